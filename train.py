"""Trains a YouTube-8M model: one custom training step run with strategy.run.

    python train.py --frame_features --model=DCGNModel \
        --train_data_pattern='data/frame/train*.tfrecord' --train_dir=runs/dcgn

A rerun with the same --train_dir resumes from the last checkpoint. The flags
that shape the model are saved beside the checkpoints (model_config.json),
so eval.py and inference.py need only --train_dir. At the end the model is
exported as a SavedModel (train_dir/export/step_N) whose serving signature
takes serialized records and returns the top-k classes and scores.
"""

import contextlib
import glob
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
import cli
import common
import configs
import eval_util
import losses
import model_flags
import models
import train_flags
import train_lock
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
        keras.mixed_precision.set_global_policy(FLAGS.mixed_precision or "float32")
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
        self._agree = None
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # The save is a collective, so every worker must stop after the
            # same step: a stop request rides on one small all-reduce per step,
            # a count per stop signal (ReduceOp has no MAX).
            def agree(local):
                per_replica = strategy.run(tf.identity, args=(local,))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, None)

            self._agree = tf.function(agree)

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

    def export(self, reader, schema):
        """Exports the model at this step, unless that was done already."""
        export_dir = os.path.join(
            self.train_dir, common.EXPORT_DIR, f"step_{self.step}"
        )
        if not os.path.isdir(export_dir):
            common.export_saved_model(
                self.model, reader, schema, export_dir, FLAGS.export_top_k
            )
            cli.say(f"exported {export_dir}")

    def stop_signal(self, stop):
        """The signal that stops training after this step, agreed by all workers."""
        if self._agree is None:
            return stop.received
        local = [float(stop.received == number) for number in cli.StopSignals.SIGNALS]
        counts = self._agree(tf.constant(local, tf.float32)).numpy()
        received = [n for n, c in zip(cli.StopSignals.SIGNALS, counts) if c > 0]
        return received[0] if received else 0

    def save(self, loss):
        if not np.isfinite(loss):
            raise common.UsageError(
                f"the training loss is {loss} at step {self.step}; nothing was "
                f"saved, the last good checkpoint is "
                f"{self.manager.latest_checkpoint}. Lower --base_learning_rate or "
                "check the data for NaN or infinite features."
            )
        try:
            self.manager.save(checkpoint_number=self.step)
        except Exception as error:
            if not atomic_files.is_disk_full(error):
                raise
            # What the failed save left (TensorFlow's ckpt-N_temp staging, a
            # partial ckpt-N): the checkpoint state still names the last good one.
            directory = self.manager.directory
            for left in glob.glob(os.path.join(directory, f"ckpt-{self.step}[._]*")):
                if os.path.isdir(left):
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    os.remove(left)
            raise atomic_files.disk_full(
                directory,
                f"the checkpoint ckpt-{self.step}",
                common.kept_checkpoints(directory),
            ) from None

    def train(self, reader, inspected, stop):
        """Trains to the end of the data or --max_steps.

        stop: a cli.StopSignals; after a signal, the current step finishes,
        is checkpointed and the program exits with 128 + the signal.
        """
        train_step = training.make_train_step(
            self.model,
            self.optimizer,
            self.loss_fn,
            self.global_batch_size,
            clip_gradient_norm=FLAGS.clip_gradient_norm,
            regularization_penalty=FLAGS.regularization_penalty,
            strategy=self.strategy,
            jit_compile=FLAGS.jit_compile,
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
            if (
                self.chief
                and FLAGS.export_model
                and FLAGS.export_model_steps
                and step % FLAGS.export_model_steps == 0
            ):
                self.export(reader, inspected[1])
            signal_number = self.stop_signal(stop)
            if signal_number:
                self.stop(signal_number, loss, writer)
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
        elif checkpointed_step(self.manager) != self.step:
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

    def stop(self, signal_number, loss, writer):
        if checkpointed_step(self.manager) != self.step:
            self.save(loss)
        writer.flush()
        if self.chief:
            cli.say(
                f"stopped by {cli.signal_name(signal_number)} after step {self.step}: "
                f"saved {self.manager.latest_checkpoint}. Run the same command "
                "to resume from it."
            )
        raise SystemExit(128 + signal_number)

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


def _bytes(variables):
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def check_space(trainer):
    """Refuses a train_dir without room for what this run will write.

    A checkpoint holds the model and the optimizer's state (Adam: two values
    per weight); --keep_checkpoint_max of them are kept and one more is
    written before the oldest goes; each export holds the model. Checkpoints
    already there count as room, since the rotation replaces them.
    """
    train_dir = trainer.train_dir
    checkpoint = _bytes(trainer.model.variables) + _bytes(trainer.optimizer.variables)
    export = _bytes(trainer.model.variables)
    exports = int(FLAGS.export_model)
    if FLAGS.export_model and FLAGS.export_model_steps and FLAGS.max_steps:
        exports += FLAGS.max_steps // FLAGS.export_model_steps
    existing = sum(
        os.path.getsize(path) for path in glob.glob(os.path.join(train_dir, "ckpt-*.*"))
    )
    need = checkpoint * (FLAGS.keep_checkpoint_max + 1) + export * exports - existing
    free = shutil.disk_usage(train_dir).free
    if free < need:
        mib = 1 << 20
        raise cli.UsageError(
            f"--train_dir {train_dir} has {free / mib:.1f} MiB free; this run "
            f"writes about {need / mib:.1f} MiB: checkpoints of "
            f"{checkpoint / mib:.1f} MiB (the model and its optimizer's state), "
            f"--keep_checkpoint_max={FLAGS.keep_checkpoint_max} of them kept and "
            f"one being written, and {exports} export(s) of {export / mib:.1f} "
            "MiB. Free some space, lower --keep_checkpoint_max, or use another "
            "--train_dir."
        )


def checkpointed_step(manager):
    """The step of the run's last checkpoint, None before the first."""
    latest = manager.latest_checkpoint
    return cli.checkpoint_step(latest) if latest else None


def clear_previous_run(train_dir):
    """--start_new_model: removes what the previous run left (checkpoints,
    exports, event files, training summary), so that nothing of it is read
    or shown beside the new run. Returns what was removed."""
    removed = []
    state = tf.train.get_checkpoint_state(train_dir)
    if state:
        for path in state.all_model_checkpoint_paths:
            for name in tf.io.gfile.glob(path + ".*"):
                tf.io.gfile.remove(name)
            removed.append(os.path.basename(path))
        tf.io.gfile.remove(os.path.join(train_dir, "checkpoint"))
    for name in (common.EXPORT_DIR, "eval"):
        path = os.path.join(train_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
            removed.append(name + "/")
    for path in tf.io.gfile.glob(os.path.join(train_dir, "events.out.tfevents.*")):
        tf.io.gfile.remove(path)
        removed.append(os.path.basename(path))
    summary = os.path.join(train_dir, TRAINING_SUMMARY_FILE)
    if os.path.exists(summary):
        os.remove(summary)
        removed.append(TRAINING_SUMMARY_FILE)
    return removed


def check_run_settings(train_dir):
    """Refuses to resume with a changed RUN_SETTINGS flag unless allowed."""
    step = cli.latest_checkpoint_step(train_dir)
    if not step:
        return  # nothing trained yet: nothing to continue
    saved, now = common.load_run_settings(train_dir), train_flags.run_settings(FLAGS)
    changed = [
        f"--{name}: {saved[name]!r} in the run so far, {now[name]!r} now"
        for name in train_flags.RUN_SETTINGS
        if name in saved and saved[name] != now[name]
    ]
    if not changed:
        return
    if not FLAGS.allow_changed_settings:
        raise cli.UsageError(
            f"{train_dir} holds a run at step {step} trained with other settings: "
            + "; ".join(changed)
            + ". Give the same values to resume it, --allow_changed_settings to "
            "apply the new ones from step "
            f"{step} on, or --start_new_model to start over."
        )
    logging.warning(
        "Resuming at step %d with changed settings (--allow_changed_settings): %s",
        step,
        "; ".join(changed),
    )


def main(unused_argv):
    if not FLAGS.train_data_pattern:
        raise cli.UsageError("--train_data_pattern is required.")
    cli.check_positive(FLAGS, "batch_size", "max_steps", "num_epochs", "log_steps")
    config = model_flags.model_config(FLAGS)
    train_dir = FLAGS.train_dir
    config_path = os.path.join(train_dir, common.MODEL_CONFIG_FILE)
    # A run that never checkpointed left nothing to continue: its config is
    # replaced (a start that failed on bad data must not block the fixed one).
    if (
        os.path.exists(config_path)
        and cli.latest_checkpoint_step(train_dir)
        and not FLAGS.start_new_model
    ):
        differences = configs.differences(common.load_model_config(train_dir), config)
        if differences:
            raise cli.UsageError(
                f"{train_dir} holds a model trained with other settings "
                f"({', '.join(differences)}); use another --train_dir, or "
                "--start_new_model to replace it."
            )
        check_run_settings(train_dir)
    # Before any TensorFlow op: a multi-worker strategy must configure the
    # runtime first.
    strategy = common.choose_strategy(FLAGS.distribution_strategy, FLAGS.num_gpu)
    reader = common.program_reader(config)
    # The data is checked (first record) before anything is written.
    inspected = reader.inspect(
        FLAGS.train_data_pattern, config.num_shots, config.kts_penalty
    )
    # How much room the run needs is known once the model is built (check_space).
    common.check_writable(train_dir, "--train_dir", min_free=0)
    chief = common.is_chief(strategy)
    with train_lock.TrainDirLock(train_dir) if chief else contextlib.nullcontext():
        train(strategy, config, train_dir, reader, inspected)


def train(strategy, config, train_dir, reader, inspected):
    """Trains and exports, holding the lock of train_dir (the chief)."""
    _, schema = inspected
    if FLAGS.start_new_model and common.is_chief(strategy):
        removed = clear_previous_run(train_dir)
        if removed:
            cli.say(f"--start_new_model: removed {', '.join(removed)}")
    trainer = Trainer(strategy, config, train_dir)
    if trainer.chief:
        check_space(trainer)
    resumed = trainer.restore()
    if trainer.chief:
        common.save_model_config(train_dir, config, train_flags.run_settings(FLAGS))
    if resumed:
        cli.say(f"resuming from {resumed} at step {trainer.step}")
    with cli.StopSignals() as stop:
        summary = trainer.train(reader, inspected, stop)
    if trainer.chief:
        atomic_files.atomic_write(
            os.path.join(train_dir, TRAINING_SUMMARY_FILE),
            json.dumps(summary, indent=2) + "\n",
        )
        if FLAGS.export_model:
            trainer.export(reader, schema)
    else:
        shutil.rmtree(trainer.manager.directory, ignore_errors=True)


if __name__ == "__main__":
    cli.run(main)
