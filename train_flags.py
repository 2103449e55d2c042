"""train.py's flags other than the model's (data, optimisation, checkpoints).

Defined by a function, like model_flags, so that compare.py can check the
flags it passes on to train.py against a private copy, without TensorFlow.
"""

from absl import flags

import cli


# Flags that shape the optimisation: a resumed run must keep them, or its
# steps would not continue the ones before (a new decay applies back to step
# 0, a new batch size changes the decay's steps). The others (max_steps,
# num_epochs, data, checkpoint cadence, export) may change between runs.
RUN_SETTINGS = (
    "batch_size",
    "optimizer",
    "base_learning_rate",
    "learning_rate_decay",
    "learning_rate_decay_examples",
    "label_loss",
    "regularization_penalty",
    "clip_gradient_norm",
    "mixed_precision",
)


def run_settings(flag_values):
    """{flag: value} of RUN_SETTINGS, as saved beside the model config."""
    return {name: flag_values[name].value for name in RUN_SETTINGS}


def define(flag_values=flags.FLAGS):
    fv = dict(flag_values=flag_values)
    cli.define_program_flags(flag_values)
    flags.DEFINE_string(
        "train_data_pattern", "", "Glob of the training TFRecord files.", **fv
    )
    flags.DEFINE_integer(
        "num_gpu",
        None,
        "The most local GPUs to use (0: none); default: all of them. Several "
        "GPUs train with MirroredStrategy (--distribution_strategy).",
        **fv,
    )
    flags.DEFINE_bool(
        "jit_compile",
        False,
        "Compile the training step with XLA (accelerators; CPU works too).",
        **fv,
    )
    # float16 is not offered: its 5-bit exponent needs loss scaling, and
    # on these models it still gave NaN losses (average pooling) or skipped
    # every step (LSTM, DCGN); bfloat16 has float32's range and needs none.
    flags.DEFINE_enum(
        "mixed_precision",
        "",
        ["", "mixed_bfloat16"],
        "mixed_bfloat16: compute the model body in bfloat16, with float32 "
        "variables, head, loss and metrics; empty: float32.",
        **fv,
    )
    flags.DEFINE_integer(
        "export_model_steps",
        1000,
        "Also export the model (train_dir/export/step_N) every this many steps; "
        "0: only at the end.",
        **fv,
    )
    flags.DEFINE_bool(
        "allow_changed_settings",
        False,
        "Resume although a flag that shapes the optimisation (batch size, "
        "optimizer, learning rate and its decay, loss, regularisation, "
        "clipping) differs from the run's first; the new values apply from "
        "the resumed step on.",
        **fv,
    )
    flags.DEFINE_bool(
        "start_new_model",
        False,
        "Delete the checkpoints in --train_dir and start over.",
        **fv,
    )
    flags.DEFINE_string(
        "distribution_strategy",
        "auto",
        "auto, default, mirrored (local GPUs) or multi_worker (TF_CONFIG).",
        **fv,
    )
    flags.DEFINE_integer(
        "batch_size", 1024, "Global batch size (split over the replicas).", **fv
    )
    flags.DEFINE_string(
        "label_loss",
        "CrossEntropyLoss",
        "The training loss: CrossEntropyLoss, HingeLoss or SoftmaxLoss.",
        **fv,
    )
    flags.DEFINE_float(
        "regularization_penalty",
        1.0,
        "Weight of the models' L2 regularisation in the loss.",
        **fv,
    )
    flags.DEFINE_float("base_learning_rate", 0.01, "Initial learning rate.", **fv)
    flags.DEFINE_float(
        "learning_rate_decay",
        0.95,
        "Learning rate factor every --learning_rate_decay_examples.",
        **fv,
    )
    flags.DEFINE_float(
        "learning_rate_decay_examples",
        4000000,
        "Training examples between learning rate decays.",
        **fv,
    )
    flags.DEFINE_integer("num_epochs", 5, "Passes over the training data.", **fv)
    flags.DEFINE_integer(
        "max_steps", None, "Stop after this many steps (all runs together).", **fv
    )
    flags.DEFINE_string(
        "optimizer",
        "AdamOptimizer",
        "A Keras optimizer name (adam, sgd, rmsprop, adagrad, ...); the "
        "starter's AdamOptimizer etc. work too.",
        **fv,
    )
    flags.DEFINE_float(
        "clip_gradient_norm",
        1.0,
        "Clip each gradient to this norm (0: no clipping).",
        **fv,
    )
    flags.DEFINE_integer("num_readers", 8, "Files read in parallel.", **fv)
    flags.DEFINE_integer(
        "save_checkpoint_steps",
        1000,
        "Checkpoint every this many steps (0: only by time).",
        **fv,
    )
    flags.DEFINE_integer(
        "save_checkpoint_secs", 600, "Checkpoint at least this often, in seconds.", **fv
    )
    flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept.", **fv)
    flags.DEFINE_integer(
        "log_steps",
        10,
        "Print progress and write summaries every this many steps.",
        **fv,
    )
    flags.DEFINE_bool(
        "export_model",
        True,
        "Export a SavedModel to train_dir/export/step_N when training ends.",
        **fv,
    )
    flags.DEFINE_integer(
        "export_top_k", 20, "Classes the exported serving signature returns.", **fv
    )
