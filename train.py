"""Trains a YouTube-8M model: one custom training step run with strategy.run.

    python train.py --frame_features --model=DCGNModel \
        --train_data_pattern='data/frame/train*.tfrecord' --train_dir=runs/dcgn

A rerun with the same --train_dir resumes from the last checkpoint. The flags
that shape the model are saved beside the checkpoints (model_config.json),
so eval.py and inference.py need only --train_dir. At the end the model is
exported as a SavedModel (train_dir/export/step_N) whose serving signature
takes serialized records and returns the top-k classes and scores.
"""

import json
import os
import shutil
import time

from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import atomic_files
import cli
import common
import configs
import eval_util
import losses
import model_flags
import models
import train_flags
import training

FLAGS = flags.FLAGS
TRAINING_SUMMARY_FILE = "training_summary.json"

model_flags.define(FLAGS)
train_flags.define(FLAGS)
# --help lists the flags of the modules that define them for train.py.
flags.adopt_module_key_flags(model_flags)
flags.adopt_module_key_flags(train_flags)
flags.adopt_module_key_flags(cli)


class Trainer:
    """Holds the model, optimizer and checkpoints of one training run."""

    def __init__(self, strategy, config, train_dir):
        self.strategy = strategy
        self.chief = common.is_chief(strategy)
        self.train_dir = train_dir
        self.config = config
        self.global_batch_size = FLAGS.batch_size
        with strategy.scope():
            self.model = models.build_model(config)
            self.optimizer = training.make_optimizer(
                FLAGS.optimizer,
                base_learning_rate=FLAGS.base_learning_rate,
                learning_rate_decay=FLAGS.learning_rate_decay,
                learning_rate_decay_examples=FLAGS.learning_rate_decay_examples,
                global_batch_size=self.global_batch_size,
            )
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

    def dataset(self, reader, inspected):
        def make(input_context):
            return common.make_dataset(
                self.config,
                FLAGS.train_data_pattern,
                self.global_batch_size,
                reader=reader,
                inspected=inspected,
                training=True,
                num_epochs=FLAGS.num_epochs,
                num_readers=FLAGS.num_readers,
                input_context=input_context,
            )

        return self.strategy.distribute_datasets_from_function(make)

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

    def train(self, reader, inspected):
        train_step = training.make_train_step(
            self.model,
            self.optimizer,
            self.loss_fn,
            self.global_batch_size,
            clip_gradient_norm=FLAGS.clip_gradient_norm,
            regularization_penalty=FLAGS.regularization_penalty,
            strategy=self.strategy,
        )
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
            self.dataset(reader, inspected), FLAGS.train_data_pattern
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
        if self.step == 0:
            # Training batches are whole (drop_remainder): a training set
            # smaller than one batch gives none, and an untrained model must
            # not be exported as if it were trained.
            raise cli.UsageError(
                f"no training step ran: {FLAGS.train_data_pattern!r} read "
                f"--num_epochs={FLAGS.num_epochs} times holds fewer records than "
                f"one batch of --batch_size={self.global_batch_size} (training "
                "uses whole batches only). Lower --batch_size."
            )
        if self.step == start_step:
            logging.warning(
                "No training step ran: --max_steps (%s) was already reached at "
                "step %d.",
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
            eta = " | ETA " + cli.format_duration(
                (FLAGS.max_steps - step) / max(steps_per_second, 1e-9)
            )
        cli.say(
            f"training step {step} | Loss: {loss:.4f} | GAP: {gap:.3f} | "
            f"Hit@1: {hit_at_one:.3f} | lr {learning_rate:.2e} | "
            f"{rate:.0f} examples/s{eta}"
        )


def checkpointed_step(manager):
    return cli.checkpoint_step(manager.latest_checkpoint)


def delete_checkpoints(train_dir):
    state = tf.train.get_checkpoint_state(train_dir)
    if state:
        for path in state.all_model_checkpoint_paths:
            for name in tf.io.gfile.glob(path + ".*"):
                tf.io.gfile.remove(name)
        tf.io.gfile.remove(os.path.join(train_dir, "checkpoint"))


def main(unused_argv):
    if not FLAGS.train_data_pattern:
        raise cli.UsageError("--train_data_pattern is required.")
    cli.check_positive(FLAGS, "batch_size", "max_steps", "num_epochs", "log_steps")
    config = model_flags.model_config(FLAGS)
    train_dir = FLAGS.train_dir
    config_path = os.path.join(train_dir, common.MODEL_CONFIG_FILE)
    if os.path.exists(config_path) and not FLAGS.start_new_model:
        differences = configs.differences(common.load_model_config(train_dir), config)
        if differences:
            raise cli.UsageError(
                f"{train_dir} holds a model trained with other settings "
                f"({', '.join(differences)}); use another --train_dir, or "
                "--start_new_model to replace it."
            )
    # Before any TensorFlow op: a multi-worker strategy must configure the
    # runtime first.
    strategy = common.choose_strategy(FLAGS.distribution_strategy)
    reader = common.program_reader(config)
    # The data is checked (first record) before anything is written.
    inspected = reader.inspect(FLAGS.train_data_pattern, config.num_shots)
    _, schema = inspected
    common.check_writable(train_dir, "--train_dir")
    if FLAGS.start_new_model and common.is_chief(strategy):
        delete_checkpoints(train_dir)
    trainer = Trainer(strategy, config, train_dir)
    resumed = trainer.restore()
    if trainer.chief:
        common.save_model_config(train_dir, config)
    if resumed:
        cli.say(f"resuming from {resumed} at step {trainer.step}")
    summary = trainer.train(reader, inspected)
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
                trainer.model, reader, schema, export_dir, FLAGS.export_top_k
            )
            cli.say(f"exported {export_dir}")
    else:
        shutil.rmtree(trainer.manager.directory, ignore_errors=True)


if __name__ == "__main__":
    cli.run(main)
