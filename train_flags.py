"""train.py's flags other than the model's, and the one place they become
a configs.TrainingConfig.

Defined by a function, like model_flags, so that compare.py can check the
flags it passes on to train.py against a private copy, without TensorFlow.
Defaults come from the config classes, so each is written once.
"""

from absl import flags

import cli
import configs


def training_config(fv=flags.FLAGS):
    """The TrainingConfig train.py's flags describe."""
    return configs.from_flags(
        configs.TrainingConfig,
        fv,
        optimization=configs.from_flags(configs.OptimizationConfig, fv),
    )


def define(flag_values=flags.FLAGS):
    fv = dict(flag_values=flag_values)
    run = configs.TrainingConfig(train_data_pattern="")
    optimization = run.optimization
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
        run.jit_compile,
        "Compile the training step with XLA (accelerators; CPU works too).",
        **fv,
    )
    # float16 is not offered: its 5-bit exponent needs loss scaling, and
    # on these models it still gave NaN losses (average pooling) or skipped
    # every step (LSTM, DCGN); bfloat16 has float32's range and needs none.
    flags.DEFINE_enum(
        "mixed_precision",
        optimization.mixed_precision,
        ["", "mixed_bfloat16"],
        "mixed_bfloat16: compute the model body in bfloat16, with float32 "
        "variables, head, loss and metrics; empty: float32.",
        **fv,
    )
    flags.DEFINE_integer(
        "export_model_steps",
        run.export_model_steps,
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
        "batch_size",
        optimization.batch_size,
        "Global batch size (split over the replicas).",
        **fv,
    )
    flags.DEFINE_string(
        "label_loss",
        optimization.label_loss,
        "The training loss: CrossEntropyLoss, HingeLoss or SoftmaxLoss.",
        **fv,
    )
    flags.DEFINE_float(
        "regularization_penalty",
        optimization.regularization_penalty,
        "Weight of the models' L2 regularisation in the loss.",
        **fv,
    )
    flags.DEFINE_float(
        "base_learning_rate",
        optimization.base_learning_rate,
        "Initial learning rate.",
        **fv,
    )
    flags.DEFINE_float(
        "learning_rate_decay",
        optimization.learning_rate_decay,
        "Learning rate factor every --learning_rate_decay_examples.",
        **fv,
    )
    flags.DEFINE_float(
        "learning_rate_decay_examples",
        optimization.learning_rate_decay_examples,
        "Training examples between learning rate decays.",
        **fv,
    )
    flags.DEFINE_integer(
        "num_epochs", run.num_epochs, "Passes over the training data.", **fv
    )
    flags.DEFINE_integer(
        "max_steps",
        run.max_steps,
        "Stop after this many steps (all runs together).",
        **fv,
    )
    flags.DEFINE_string(
        "optimizer",
        optimization.optimizer,
        "A Keras optimizer name (adam, sgd, rmsprop, adagrad, ...); the "
        "starter's AdamOptimizer etc. work too.",
        **fv,
    )
    flags.DEFINE_float(
        "clip_gradient_norm",
        optimization.clip_gradient_norm,
        "Clip each gradient to this norm (0: no clipping).",
        **fv,
    )
    flags.DEFINE_integer(
        "num_readers", run.num_readers, "Files read in parallel.", **fv
    )
    flags.DEFINE_integer(
        "save_checkpoint_steps",
        run.save_checkpoint_steps,
        "Checkpoint every this many steps (0: only by time).",
        **fv,
    )
    flags.DEFINE_integer(
        "save_checkpoint_secs",
        run.save_checkpoint_secs,
        "Checkpoint at least this often, in seconds.",
        **fv,
    )
    flags.DEFINE_integer(
        "keep_checkpoint_max", run.keep_checkpoint_max, "Checkpoints kept.", **fv
    )
    flags.DEFINE_integer(
        "log_steps",
        run.log_steps,
        "Print progress and write summaries every this many steps.",
        **fv,
    )
    flags.DEFINE_bool(
        "export_model",
        run.export_model,
        "Export a SavedModel to train_dir/export/step_N when training ends.",
        **fv,
    )
    flags.DEFINE_integer(
        "export_top_k",
        run.export_top_k,
        "Classes the exported serving signature returns.",
        **fv,
    )
