"""Trains a YouTube-8M model: one custom training step run with strategy.run.

    python train.py --frame_features --model=DCGNModel \
        --train_data_pattern='data/frame/train*.tfrecord' --train_dir=runs/dcgn

A rerun with the same --train_dir resumes from the last checkpoint. The flags
that shape the model are saved beside the checkpoints (model_config.json),
so eval.py and inference.py need only --train_dir. At the end the model is
exported as a SavedModel (train_dir/export/step_N) whose serving signature
takes serialized records and returns the top-k classes and scores.
"""

import cli  # first: it quiets TensorFlow's C++ log before TensorFlow loads

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
import common
import configs
import eval_util
import losses
import model_flags
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
    """Holds the model, optimizer and checkpoints of one training run.

    config: the configs.ModelConfig; run: the configs.TrainingConfig.
    """

    def __init__(self, strategy, config, run, train_dir):
        self.strategy = strategy
        self.chief = common.is_chief(strategy)
        self.train_dir = train_dir
        self.config = config
        self.run = run
        optimization = run.optimization
        self.global_batch_size = optimization.batch_size
        keras.mixed_precision.set_global_policy(
            optimization.mixed_precision or "float32"
        )
        with strategy.scope():
            self.model = common.build_model(config)
            self.optimizer = training.make_optimizer(optimization)
            # Restoring needs every variable to exist: Keras 3 restores nothing
            # into an unbuilt model or optimizer, silently.
            self.optimizer.build(self.model.trainable_variables)
        self.loss_fn = losses.get_loss(optimization.label_loss)
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
            max_to_keep=run.keep_checkpoint_max,
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
                self.run.train_data_pattern,
                self.global_batch_size,
                reader=reader,
                inspected=inspected,
                training=True,
                num_epochs=self.run.num_epochs,
                num_readers=self.run.num_readers,
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
                self.model, reader, schema, export_dir, self.run.export_top_k
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

    def train(self, reader, inspected, last_step, stop, serving_reader):
        """Trains to the end of the data or last_step (None: no end but the data).

        reader, inspected: the training data's (common.inspect_data);
        serving_reader: the whole-video reader the exports parse with.

        stop: a cli.StopSignals; after a signal, the current step finishes,
        is checkpointed and the program exits with 128 + the signal.
        """
        run = self.run
        train_step = training.make_train_step(
            self.model,
            self.optimizer,
            self.loss_fn,
            self.global_batch_size,
            clip_gradient_norm=run.optimization.clip_gradient_norm,
            regularization_penalty=run.optimization.regularization_penalty,
            strategy=self.strategy,
            jit_compile=run.jit_compile,
        )
        writer = (
            tf.summary.create_file_writer(self.train_dir)
            if self.chief
            else tf.summary.create_noop_writer()
        )
        start_step = self.step
        progress = cli.Progress(last_step, "steps")
        last_save_time = time.time()
        loss = float("nan")
        for batch in common.explained_batches(
            self.dataset(reader, inspected), run.train_data_pattern
        ):
            if last_step is not None and self.step >= last_step:
                break
            loss, predictions, labels = train_step(batch)
            loss = float(loss)
            step = self.step
            # The rate counts from the first step on: tracing and start-up
            # are not training speed.
            progress.measure(step)
            if step % run.log_steps == 0 or step == last_step:
                self.log(
                    writer,
                    step,
                    last_step,
                    loss,
                    progress,
                    self.local(predictions),
                    self.local(labels),
                )
            if (
                run.save_checkpoint_steps and step % run.save_checkpoint_steps == 0
            ) or time.time() - last_save_time > run.save_checkpoint_secs:
                self.save(loss)
                last_save_time = time.time()
            if (
                self.chief
                and run.export_model
                and run.export_model_steps
                and step % run.export_model_steps == 0
            ):
                self.export(serving_reader, inspected[1])
            signal_number = self.stop_signal(stop)
            if signal_number:
                self.stop(signal_number, loss, writer)
        if self.step == 0:
            # Training batches are whole (drop_remainder): a training set
            # smaller than one batch gives none, and an untrained model must
            # not be exported as if it were trained.
            raise cli.UsageError(
                f"no training step ran: {run.train_data_pattern!r} read "
                f"--num_epochs={run.num_epochs} times holds fewer records than "
                f"one batch of --batch_size={self.global_batch_size} (training "
                "uses whole batches only). Lower --batch_size."
            )
        if self.step == start_step:
            logging.warning(
                "No training step ran: the run's last step, %s (--max_steps or "
                "--num_epochs), was already reached.",
                last_step,
            )
        elif checkpointed_step(self.manager) != self.step:
            self.save(loss)
        writer.flush()
        steps = self.step - start_step
        rate, _ = progress.measure(self.step)
        return {
            "steps": steps,
            "final_step": self.step,
            "loss": loss,
            "parameters": self.model.count_params(),
            "examples_per_second": (
                rate * self.global_batch_size if rate is not None else None
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

    def log(self, writer, step, last_step, loss, progress, predictions, labels):
        gap = eval_util.calculate_gap(predictions, labels)
        hit_at_one = eval_util.calculate_hit_at_one(predictions, labels)
        learning_rate = float(self.optimizer.learning_rate)
        rate, seconds_left = progress.measure(step)
        examples_per_second = (rate or 0.0) * self.global_batch_size
        with writer.as_default(step=step):
            tf.summary.scalar("loss", loss)
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("examples_per_second", examples_per_second)
            tf.summary.scalar("train_gap", gap)
            tf.summary.scalar("train_hit_at_one", hit_at_one)
        of = f"/{last_step}" if last_step is not None else ""
        line = (
            f"training step {step}{of} | Loss: {loss:.4f} | GAP: {gap:.3f} | "
            f"Hit@1: {hit_at_one:.3f} | lr {learning_rate:.2e}"
        )
        if rate is not None:
            line += f" | {examples_per_second:.0f} examples/s"
        if seconds_left is not None:
            line += f" | ETA {cli.format_duration(seconds_left)}"
        cli.say(line)


def _bytes(variables):
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def check_space(trainer, last_step):
    """Refuses a train_dir without room for what this run will write.

    A checkpoint holds the model and the optimizer's state (Adam: two values
    per weight); --keep_checkpoint_max of them are kept and one more is
    written before the oldest goes; each export holds the model. Checkpoints
    already there count as room, since the rotation replaces them.
    """
    run, train_dir = trainer.run, trainer.train_dir
    checkpoint = _bytes(trainer.model.variables) + _bytes(trainer.optimizer.variables)
    export = _bytes(trainer.model.variables)
    exports = int(run.export_model)
    if run.export_model and run.export_model_steps and last_step:
        exports += (last_step - trainer.step) // run.export_model_steps
    existing = sum(
        os.path.getsize(path) for path in glob.glob(os.path.join(train_dir, "ckpt-*.*"))
    )
    need = checkpoint * (run.keep_checkpoint_max + 1) + export * exports - existing
    free = shutil.disk_usage(train_dir).free
    if free < need:
        mib = 1 << 20
        raise cli.UsageError(
            f"--train_dir {train_dir} has {free / mib:.1f} MiB free; this run "
            f"writes about {need / mib:.1f} MiB: checkpoints of "
            f"{checkpoint / mib:.1f} MiB (the model and its optimizer's state), "
            f"--keep_checkpoint_max={run.keep_checkpoint_max} of them kept and "
            f"one being written, and {exports} export(s) of {export / mib:.1f} "
            "MiB. Free some space, lower --keep_checkpoint_max, or use another "
            "--train_dir."
        )


def planned_last_step(run, files, reader):
    """The step the run ends at: --max_steps, or the end of --num_epochs
    passes over the data counted from step 0 (a resumed run finishes the
    epochs of the first), whichever comes first. None when neither is known:
    compressed or remote files, and rated segments, are not counted (that
    would take a full read).
    """
    last_step = run.max_steps
    # Rated segments are not records: their count needs a full read.
    records = None if run.segment_labels else reader.files.count(files)
    if records is None:
        return last_step
    batch_size = run.optimization.batch_size
    epochs_end = records * run.num_epochs // batch_size
    if epochs_end == 0:
        # Training batches are whole (drop_remainder): said before anything
        # is written, not after an empty run.
        raise cli.UsageError(
            f"no training step can run: {run.train_data_pattern!r} holds "
            f"{records} records, read --num_epochs={run.num_epochs} times fewer "
            f"than one batch of --batch_size={batch_size} (training uses whole "
            "batches only). Lower --batch_size."
        )
    return epochs_end if last_step is None else min(last_step, epochs_end)


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


def check_resumable(train_dir, config, optimization):
    """Refuses a train_dir whose run has another model, or (unless allowed)
    another optimisation; a run that never checkpointed left nothing to
    continue and is replaced (a start that failed must not block the fixed one)."""
    step = cli.latest_checkpoint_step(train_dir)
    if not step or FLAGS.start_new_model:
        return
    model_changes = configs.changes(common.load_model_config(train_dir), config)
    if model_changes:
        raise cli.UsageError(
            f"{train_dir} holds a model trained with other settings: "
            + "; ".join(model_changes)
            + ". Use another --train_dir, or --start_new_model to replace it."
        )
    saved = common.load_optimization_config(train_dir)
    changed = configs.changes(saved, optimization) if saved else []
    if not changed:
        return
    if not FLAGS.allow_changed_settings:
        raise cli.UsageError(
            f"{train_dir} holds a run at step {step} trained with other settings: "
            + "; ".join(changed)
            + ". Give the same values to resume it, --allow_changed_settings to "
            f"apply the new ones from step {step} on, or --start_new_model to "
            "start over."
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
    run = train_flags.training_config(FLAGS)
    train_dir = FLAGS.train_dir
    check_resumable(train_dir, config, run.optimization)
    # Before any TensorFlow op: a multi-worker strategy must configure the
    # runtime first.
    strategy = common.choose_strategy(FLAGS.distribution_strategy, FLAGS.num_gpu)
    reader = common.program_reader(
        config, "rated" if run.segment_labels else None, run.segment_size
    )
    # The data is checked (first record, record count) before anything is
    # written.
    inspected = common.inspect_data(config, reader, run.train_data_pattern)
    last_step = planned_last_step(run, inspected[0], reader)
    created = not os.path.isdir(train_dir)
    # How much room the run needs is known once the model is built (check_space).
    common.check_writable(train_dir, "--train_dir", min_free=0)
    before = set() if created else set(os.listdir(train_dir))
    step_before = cli.latest_checkpoint_step(train_dir)
    chief = common.is_chief(strategy)
    try:
        with train_lock.TrainDirLock(train_dir) if chief else contextlib.nullcontext():
            train(strategy, config, run, train_dir, reader, inspected, last_step)
    except BaseException:
        if chief and cli.latest_checkpoint_step(train_dir) == step_before:
            undo_failed_start(train_dir, before, created)
        raise


def undo_failed_start(train_dir, before, created):
    """Removes what a run that failed before its first checkpoint wrote (its
    config, its events file): such a start leaves train_dir as it was."""
    for name in set(os.listdir(train_dir)) - before:
        if name == common.MODEL_CONFIG_FILE or name.startswith("events.out.tfevents"):
            os.remove(os.path.join(train_dir, name))
    if created and not os.listdir(train_dir):
        os.rmdir(train_dir)


def train(strategy, config, run, train_dir, reader, inspected, last_step):
    """Trains and exports, holding the lock of train_dir (the chief)."""
    _, schema = inspected
    if FLAGS.start_new_model and common.is_chief(strategy):
        removed = clear_previous_run(train_dir)
        if removed:
            cli.say(f"--start_new_model: removed {', '.join(removed)}")
    trainer = Trainer(strategy, config, run, train_dir)
    resumed = trainer.restore()
    if trainer.chief:
        check_space(trainer, last_step)
        # Removed again if the run fails before its first checkpoint
        # (undo_failed_start).
        common.save_model_config(train_dir, config, run.optimization)
    if resumed:
        cli.say(f"resuming from {resumed} at step {trainer.step}")
    # Exports serve whole videos, also after fine-tuning on segments.
    serving_reader = common.program_reader(config) if run.segment_labels else reader
    with cli.StopSignals() as stop:
        summary = trainer.train(reader, inspected, last_step, stop, serving_reader)
    if trainer.chief:
        atomic_files.atomic_write(
            os.path.join(train_dir, TRAINING_SUMMARY_FILE),
            json.dumps(summary, indent=2) + "\n",
        )
        if run.export_model:
            trainer.export(serving_reader, schema)
    else:
        shutil.rmtree(trainer.manager.directory, ignore_errors=True)


if __name__ == "__main__":
    cli.run(main)
