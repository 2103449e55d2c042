"""Trains a YouTube-8M model: one custom training step run with strategy.run.

    python train.py --frame_features --model=DCGNModel \
        --train_data_pattern='data/frame/train*.tfrecord' --train_dir=runs/dcgn

A rerun with the same --train_dir resumes from the last checkpoint. The flags
that shape the model are saved beside the checkpoints (model_config.json),
so eval.py and inference.py need only --train_dir. At the end the model is
exported as a SavedModel (train_dir/export/step_N) whose serving signature
takes serialized records and returns the top-k classes and scores.
"""

import datetime
import json
import os
import shutil
import time

from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf

import atomic_files
import common
import eval_util
import losses

FLAGS = flags.FLAGS
TRAINING_SUMMARY_FILE = "training_summary.json"

flags.DEFINE_string("train_data_pattern", "", "Glob of the training TFRecord files.")
flags.DEFINE_bool(
    "frame_features",
    False,
    "Read frame-level records (SequenceExample); otherwise "
    "video-level records (Example).",
)
flags.DEFINE_string(
    "feature_names",
    None,
    "Comma-separated feature names; default rgb,audio with "
    "--frame_features, else mean_rgb,mean_audio.",
)
flags.DEFINE_string(
    "feature_sizes", "1024,128", "Comma-separated sizes of --feature_names."
)
flags.DEFINE_integer("max_frames", 300, "Frames kept per video.")
flags.DEFINE_integer(
    "num_classes", 3862, "Size of the label vocabulary (4716 for 2017 data)."
)
flags.DEFINE_string(
    "model",
    "LogisticModel",
    "A class of frame_level_models.py or video_level_models.py.",
)
flags.DEFINE_bool(
    "l2_normalize_input",
    True,
    "L2-normalise each frame over its concatenated features "
    "before the model, as the starter did.",
)
flags.DEFINE_bool(
    "start_new_model", False, "Delete the checkpoints in --train_dir and start over."
)
flags.DEFINE_string(
    "distribution_strategy",
    "auto",
    "auto, default, mirrored (local GPUs) or multi_worker (TF_CONFIG).",
)
flags.DEFINE_integer("batch_size", 1024, "Global batch size (split over the replicas).")
flags.DEFINE_string(
    "label_loss", "CrossEntropyLoss", "CrossEntropyLoss, HingeLoss or SoftmaxLoss."
)
flags.DEFINE_float(
    "regularization_penalty",
    1.0,
    "Weight of the models' L2 regularisation in the loss.",
)
flags.DEFINE_float("base_learning_rate", 0.01, "Initial learning rate.")
flags.DEFINE_float(
    "learning_rate_decay",
    0.95,
    "Learning rate factor every --learning_rate_decay_examples.",
)
flags.DEFINE_float(
    "learning_rate_decay_examples",
    4000000,
    "Training examples between learning rate decays.",
)
flags.DEFINE_integer("num_epochs", 5, "Passes over the training data.")
flags.DEFINE_integer(
    "max_steps", None, "Stop after this many steps (all runs together)."
)
flags.DEFINE_string(
    "optimizer",
    "AdamOptimizer",
    "A Keras optimizer name (adam, sgd, rmsprop, adagrad, "
    "...); the starter's AdamOptimizer etc. work too.",
)
flags.DEFINE_float(
    "clip_gradient_norm", 1.0, "Clip each gradient to this norm (0: no clipping)."
)
flags.DEFINE_integer("num_readers", 8, "Files read in parallel.")
flags.DEFINE_integer(
    "save_checkpoint_steps", 1000, "Checkpoint every this many steps (0: only by time)."
)
flags.DEFINE_integer(
    "save_checkpoint_secs", 600, "Checkpoint at least this often, in seconds."
)
flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept.")
flags.DEFINE_integer(
    "log_steps", 10, "Print progress and write summaries every this many steps."
)
flags.DEFINE_bool(
    "export_model",
    True,
    "Export a SavedModel to train_dir/export/step_N when training ends.",
)
flags.DEFINE_integer(
    "export_top_k", 20, "Classes the exported serving signature returns."
)


def make_optimizer(global_batch_size):
    """The starter's optimizer: staircase decay by examples seen, clipping."""
    schedule = keras.optimizers.schedules.ExponentialDecay(
        FLAGS.base_learning_rate,
        decay_steps=FLAGS.learning_rate_decay_examples / global_batch_size,
        decay_rate=FLAGS.learning_rate_decay,
        staircase=True,
    )
    name = FLAGS.optimizer
    key = name[: -len("Optimizer")] if name.endswith("Optimizer") else name
    try:
        optimizer_class = type(keras.optimizers.get(key.lower()))
    except ValueError:
        raise common.UsageError(
            f"--optimizer={name!r} is not a Keras optimizer; try adam, sgd, "
            "rmsprop, adagrad or adamw."
        ) from None
    # No clipnorm here: Keras clips each replica's share of the gradient
    # before summing them; replica_step clips the sum instead.
    return optimizer_class(learning_rate=schedule)


def clip_summed_gradients(gradients, clip_norm):
    """Each replica's share of the gradients, scaled as clipping their sum.

    Clips every gradient (per variable, like Keras' clipnorm) by the norm of
    its sum over the replicas, so training with several replicas or workers
    clips exactly as one process with the same global batch.
    """
    context = tf.distribute.get_replica_context()
    summed = iter(
        context.all_reduce(
            tf.distribute.ReduceOp.SUM, [g for g in gradients if g is not None]
        )
    )
    return [
        None
        if gradient is None
        else gradient * clip_norm / tf.maximum(tf.norm(next(summed)), clip_norm)
        for gradient in gradients
    ]


def format_duration(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


class Trainer:
    """Holds the model, optimizer and checkpoints of one training run."""

    def __init__(self, strategy, config, train_dir):
        self.strategy = strategy
        self.chief = common.is_chief(strategy)
        self.train_dir = train_dir
        self.global_batch_size = FLAGS.batch_size
        with strategy.scope():
            self.model = common.build_model(config)
            self.optimizer = make_optimizer(self.global_batch_size)
            # Restoring needs every variable to exist: Keras 3 restores nothing
            # into an unbuilt model or optimizer, silently.
            self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = losses.get_loss(FLAGS.label_loss)
        self.checkpoint = common.make_checkpoint(self.model, self.optimizer)
        # Every worker must save (the save is a collective), only the chief's
        # copy is kept.
        write_dir = (
            train_dir
            if self.chief
            else os.path.join(train_dir, f".worker_{strategy.cluster_resolver.task_id}")
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            write_dir,
            max_to_keep=FLAGS.keep_checkpoint_max,
            step_counter=self.optimizer.iterations,
        )

    @property
    def step(self):
        return int(self.optimizer.iterations.numpy())

    def restore(self):
        """Resumes from the last checkpoint; returns its path or None."""
        # Every worker resumes from the chief's checkpoint in the (shared)
        # train_dir: the other workers' copies are scratch, deleted at the end,
        # and may lag the chief's by a save if a worker was killed.
        latest = tf.train.latest_checkpoint(self.train_dir)
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return latest

    def dataset(self, reader):
        def make(input_context):
            return reader.dataset(
                FLAGS.train_data_pattern,
                self.global_batch_size,
                training=True,
                num_epochs=FLAGS.num_epochs,
                num_readers=FLAGS.num_readers,
                num_shots=self.model.num_shots,
                input_context=input_context,
            )

        return self.strategy.distribute_datasets_from_function(make)

    def make_train_step(self):
        model, optimizer, loss_fn = self.model, self.optimizer, self.loss_fn
        global_batch_size = self.global_batch_size
        clip_norm = FLAGS.clip_gradient_norm

        def replica_step(batch):
            with tf.GradientTape() as tape:
                predictions = model(batch, training=True)["predictions"]
                per_example = loss_fn.per_example_loss(predictions, batch["labels"])
                loss = tf.nn.compute_average_loss(
                    per_example, global_batch_size=global_batch_size
                )
                total = loss
                if model.losses:
                    total += (
                        FLAGS.regularization_penalty
                        * tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                    )
            gradients = tape.gradient(total, model.trainable_variables)
            if clip_norm > 0:
                gradients = clip_summed_gradients(gradients, clip_norm)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            return loss, predictions, batch["labels"]

        @tf.function
        def train_step(batch):
            loss, predictions, labels = self.strategy.run(replica_step, args=(batch,))
            loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
            return loss, predictions, labels

        return train_step

    def local(self, per_replica):
        return np.concatenate(
            [t.numpy() for t in self.strategy.experimental_local_results(per_replica)]
        )

    def save(self, loss):
        if not np.isfinite(loss):
            raise common.UsageError(
                f"the training loss is {loss} at step {self.step}; nothing was "
                f"saved, the last good checkpoint is "
                f"{self.manager.latest_checkpoint}. Lower --base_learning_rate or "
                "check the data for NaN or infinite features."
            )
        self.manager.save(checkpoint_number=self.step)

    def train(self, reader):
        train_step = self.make_train_step()
        writer = (
            tf.summary.create_file_writer(self.train_dir)
            if self.chief
            else tf.summary.create_noop_writer()
        )
        start_step = self.step
        last_save_time = start_time = last_log_time = time.time()
        last_log_step = start_step
        loss = float("nan")
        first_step_time = None
        for batch in common.explained_batches(
            self.dataset(reader), FLAGS.train_data_pattern
        ):
            if FLAGS.max_steps is not None and self.step >= FLAGS.max_steps:
                break
            loss, predictions, labels = train_step(batch)
            loss = float(loss)
            step = self.step
            if step == start_step + 1:
                # Steady-state speed leaves out the first step, which traces.
                first_step_time = time.time()
            if step % FLAGS.log_steps == 0 or step == FLAGS.max_steps:
                now = time.time()
                rate = (
                    (step - last_log_step)
                    * self.global_batch_size
                    / max(now - last_log_time, 1e-9)
                )
                last_log_time, last_log_step = now, step
                self.log(
                    writer,
                    step,
                    loss,
                    rate,
                    self.local(predictions),
                    self.local(labels),
                    start_time,
                    start_step,
                )
            if (
                FLAGS.save_checkpoint_steps and step % FLAGS.save_checkpoint_steps == 0
            ) or time.time() - last_save_time > FLAGS.save_checkpoint_secs:
                self.save(loss)
                last_save_time = time.time()
        if self.step == start_step:
            logging.warning(
                "No training step ran: the data ended or --max_steps "
                "(%s) was already reached at step %d.",
                FLAGS.max_steps,
                self.step,
            )
        elif (
            self.manager.latest_checkpoint is None
            or checkpointed_step(self.manager) != self.step
        ):
            self.save(loss)
        writer.flush()
        steps = self.step - start_step
        return {
            "steps": steps,
            "final_step": self.step,
            "loss": loss,
            "parameters": self.model.count_params(),
            "examples_per_second": (
                (steps - 1)
                * self.global_batch_size
                / max(time.time() - first_step_time, 1e-9)
                if steps > 1
                else None
            ),
        }

    def log(
        self, writer, step, loss, rate, predictions, labels, start_time, start_step
    ):
        gap = eval_util.calculate_gap(predictions, labels)
        hit_at_one = eval_util.calculate_hit_at_one(predictions, labels)
        learning_rate = float(self.optimizer.learning_rate)
        with writer.as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("examples_per_second", rate)
            tf.summary.scalar("train_gap", gap)
            tf.summary.scalar("train_hit_at_one", hit_at_one)
        eta = ""
        if FLAGS.max_steps:
            steps_per_second = (step - start_step) / max(time.time() - start_time, 1e-9)
            eta = " | ETA " + format_duration(
                (FLAGS.max_steps - step) / max(steps_per_second, 1e-9)
            )
        common.log_metrics_line(
            f"training step {step} | Loss: {loss:.4f} | GAP: {gap:.3f} | "
            f"Hit@1: {hit_at_one:.3f} | lr {learning_rate:.2e} | "
            f"{rate:.0f} examples/s{eta}"
        )


def checkpointed_step(manager):
    return common.checkpoint_step(manager.latest_checkpoint)


def delete_checkpoints(train_dir):
    state = tf.train.get_checkpoint_state(train_dir)
    if state:
        for path in state.all_model_checkpoint_paths:
            for name in tf.io.gfile.glob(path + ".*"):
                tf.io.gfile.remove(name)
        tf.io.gfile.remove(os.path.join(train_dir, "checkpoint"))


def main(unused_argv):
    if not FLAGS.train_data_pattern:
        raise common.UsageError("--train_data_pattern is required.")
    feature_names = FLAGS.feature_names or (
        "rgb,audio" if FLAGS.frame_features else "mean_rgb,mean_audio"
    )
    config = common.model_config(
        FLAGS.model,
        FLAGS.frame_features,
        feature_names,
        FLAGS.feature_sizes,
        FLAGS.max_frames,
        FLAGS.num_classes,
        FLAGS.flag_values_dict(),
    )
    train_dir = FLAGS.train_dir
    common.check_writable(train_dir, "--train_dir")
    config_path = os.path.join(train_dir, common.MODEL_CONFIG_FILE)
    if os.path.exists(config_path) and not FLAGS.start_new_model:
        differences = common.config_differences(
            common.load_model_config(train_dir), config
        )
        if differences:
            raise common.UsageError(
                f"{train_dir} holds a model trained with other settings "
                f"({', '.join(differences)}); use another --train_dir, or "
                "--start_new_model to replace it."
            )

    strategy = common.choose_strategy(FLAGS.distribution_strategy)
    if FLAGS.start_new_model and common.is_chief(strategy):
        delete_checkpoints(train_dir)
    trainer = Trainer(strategy, config, train_dir)
    reader = common.make_reader(config)
    resumed = trainer.restore()
    if trainer.chief:
        common.save_model_config(train_dir, config)
    if resumed:
        common.log_metrics_line(f"resuming from {resumed} at step {trainer.step}")
    summary = trainer.train(reader)
    if trainer.chief:
        atomic_files.atomic_write(
            os.path.join(train_dir, TRAINING_SUMMARY_FILE),
            json.dumps(summary, indent=2) + "\n",
        )
        if FLAGS.export_model:
            export_dir = os.path.join(
                train_dir, common.EXPORT_DIR, f"step_{trainer.step}"
            )
            common.export_saved_model(
                trainer.model, reader, export_dir, FLAGS.export_top_k
            )
            common.log_metrics_line(f"exported {export_dir}")
    else:
        shutil.rmtree(trainer.manager.directory, ignore_errors=True)


if __name__ == "__main__":
    common.run(main)
