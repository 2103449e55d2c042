"""Copies frame-level TFRecords with KTS shot boundaries stored in them.

Reading the copies with shots (e.g. train.py --dcgn_shots=32) then skips
the KTS computation, which costs more than parsing:

  python precompute_shots.py --input_data_pattern='/data/frame/train*' \
      --output_dir=/data/frame_shots32 --dcgn_shots=32 --num_workers=8

Each record is copied with the context feature `shot_boundaries` (int64
[dcgn_shots + 1], KTS over its first max_frames frames) and the penalty
they were computed with added; everything else is unchanged. Each output
file is written whole or not at all, so a rerun skips the files already
written and goes on with the rest. For the whole dataset on several
machines, give each its share: --num_shards=N --shard_index=i takes every
N-th input file from the i-th on.
"""

import multiprocessing
import os
import signal
import sys
import time

from absl import flags
import numpy as np
import threadpoolctl

import atomic_files
import cli
import configs
import kts
import model_flags
import shots
import tfrecord_files

FLAGS = flags.FLAGS
# (reader, compiled parse) a setting, built once a process: one trace serves
# every file.
_PARSERS = {}


def copy_with_shots(path, out_path, settings):
    """Writes the copy of one file with stored shots; returns its record count."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    import readers  # pylint: disable=import-outside-toplevel

    key = tuple(sorted(settings.items()))
    if key not in _PARSERS:
        # Labels are copied as they are, not parsed: any range will do.
        reader = readers.YT8MFrameFeatureReader(
            feature_names=settings["feature_names"],
            feature_sizes=settings["feature_sizes"],
            max_frames=settings["max_frames"],
            num_classes=2**31 - 1,
        )
        parse = tf.function(
            lambda s, schema: reader.parse(s, schema, with_labels=False),
            reduce_retracing=True,
        )
        _PARSERS[key] = reader, parse
    reader, parse = _PARSERS[key]
    _, schema = reader.inspect(path)
    penalty = settings["dcgn_kts_penalty"]
    count = 0
    with atomic_files.atomic_path(out_path) as tmp_path:
        with tf.io.TFRecordWriter(tmp_path) as writer:
            for records in tf.data.TFRecordDataset([path]).batch(
                settings["batch_size"]
            ):
                batch = parse(records, schema)
                bounds = kts.batch_shot_boundaries(
                    batch["video_matrix"].numpy(),
                    batch["num_frames"].numpy(),
                    settings["dcgn_shots"],
                    penalty,
                )
                for serialized, row in zip(records.numpy(), np.int64(bounds)):
                    seq = tf.train.SequenceExample.FromString(serialized)
                    context = seq.context.feature
                    context[shots.SHOTS_KEY].int64_list.value[:] = row
                    context[shots.SHOTS_PENALTY_KEY].float_list.value[:] = [penalty]
                    writer.write(seq.SerializeToString())
                    count += 1
    return count


def add_shot_boundaries_to_records(
    in_pattern,
    out_dir,
    dcgn_shots,
    dcgn_kts_penalty=configs.DCGNConfig.dcgn_kts_penalty,
    max_frames=configs.MAX_FRAMES,
    feature_names=configs.FRAME_FEATURE_NAMES,
    feature_sizes=configs.FEATURE_SIZES,
    batch_size=32,
    overwrite=False,
    num_workers=1,
    shard_index=0,
    num_shards=1,
):
    """Writes copies of this machine's share of the frame-level files with
    `shot_boundaries` stored; files already copied are skipped unless
    overwrite.

    Returns:
      (files written, videos in them).
    """
    if dcgn_shots <= 0:
        raise cli.UsageError(f"--dcgn_shots must be > 0, got {dcgn_shots}.")
    if dcgn_kts_penalty < 0:
        raise cli.UsageError(
            f"--dcgn_kts_penalty must be >= 0, got {dcgn_kts_penalty}."
        )
    if not 0 <= shard_index < num_shards:
        raise cli.UsageError(
            f"--shard_index={shard_index}: give 0 to --num_shards - 1 "
            f"({num_shards - 1})."
        )
    feature_names, feature_sizes = configs.features(feature_names, feature_sizes)
    files = tfrecord_files.match_files(in_pattern, "input_data_pattern")
    share = files[shard_index::num_shards]
    os.makedirs(out_dir, exist_ok=True)
    todo = []
    for path in share:
        out_path = os.path.join(out_dir, os.path.basename(path))
        if os.path.abspath(out_path) == os.path.abspath(path):
            raise cli.UsageError(
                f"--output_dir {out_dir} holds the input {path}; choose another "
                "directory."
            )
        if overwrite or not os.path.exists(out_path):
            todo.append((path, out_path))
    if len(todo) < len(share):
        cli.say(
            f"{len(share) - len(todo)} of {len(share)} files already copied: skipped."
        )
    settings = dict(
        dcgn_shots=dcgn_shots,
        dcgn_kts_penalty=float(dcgn_kts_penalty),
        max_frames=max_frames,
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        batch_size=batch_size,
    )
    return _copy_all(todo, settings, num_workers)


def _copy_all(todo, settings, num_workers):
    if not todo:
        return [], 0
    written, videos = [], 0
    progress = cli.Progress(len(todo), "files")
    workers = min(num_workers, len(todo))
    pool = None
    if workers == 1:
        results = (
            (out_path, copy_with_shots(path, out_path, settings))
            for path, out_path in todo
        )
    else:
        # spawn: TensorFlow does not survive fork. Each worker gets its share
        # of the cores for numpy's BLAS (KTS's Gram products), or the
        # workers' BLAS threads fight over them.
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool = multiprocessing.get_context("spawn").Pool(
            workers, _start_worker, (threads,)
        )
        results = pool.imap_unordered(_Copy(settings), todo)
    stop = cli.StopSignals()
    start = time.monotonic()
    finished = False
    try:
        with stop:
            for out_path, count in results:
                written.append(out_path)
                videos += count
                progress.update(len(written))
                if stop.received:
                    break
            finished = not stop.received
    finally:
        if pool is not None:
            if not finished:
                pool.terminate()  # the workers unwind: half-written copies go
            pool.close()
            pool.join()
    if stop.received:
        cli.say(
            f"stopped by {cli.signal_name(stop.received)}: the {len(written)} "
            "file(s) copied are kept; the same command goes on with the rest."
        )
        sys.exit(128 + stop.received)
    seconds = time.monotonic() - start
    cli.say(f"{videos} videos in {seconds:.1f} s ({videos / seconds:.1f} videos/s)")
    return written, videos


def _start_worker(threads):
    # Ctrl-C reaches the whole process group: the parent alone handles it. A
    # terminated worker unwinds, so that the copy it was writing is removed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    threadpoolctl.threadpool_limits(threads, user_api="blas")


class _Copy:
    """A picklable copy_with_shots bound to the settings, for the worker pool."""

    def __init__(self, settings):
        self.settings = settings

    def __call__(self, paths):
        path, out_path = paths
        return out_path, copy_with_shots(path, out_path, self.settings)


def main(argv):
    del argv
    cli.check_positive(FLAGS, "dcgn_shots", "num_workers", "num_shards", "max_frames")
    written, _ = add_shot_boundaries_to_records(
        FLAGS.input_data_pattern,
        FLAGS.output_dir,
        FLAGS.dcgn_shots,
        dcgn_kts_penalty=FLAGS.dcgn_kts_penalty,
        max_frames=FLAGS.max_frames,
        feature_names=FLAGS.feature_names or configs.FRAME_FEATURE_NAMES,
        feature_sizes=FLAGS.feature_sizes,
        overwrite=FLAGS.overwrite,
        num_workers=FLAGS.num_workers,
        shard_index=FLAGS.shard_index,
        num_shards=FLAGS.num_shards,
    )
    cli.say(f"wrote {len(written)} files to {FLAGS.output_dir}")


def define_flags():
    """Defined when run as a program, so tests can import this module."""
    flags.DEFINE_string(
        "input_data_pattern", None, "Glob of frame-level TFRecord files to copy."
    )
    flags.DEFINE_string(
        "output_dir", None, "Directory for the copies (same file names)."
    )
    flags.DEFINE_integer(
        "dcgn_shots",
        32,
        "The --dcgn_shots of the model that reads the copies; stores "
        "dcgn_shots+1 boundaries in the context feature shot_boundaries.",
    )
    flags.DEFINE_alias("num_shots", "dcgn_shots")
    flags.DEFINE_float(
        "dcgn_kts_penalty",
        configs.DCGNConfig.dcgn_kts_penalty,
        "The --dcgn_kts_penalty of the model that reads the copies (C of KTS "
        "eq. 8; stored beside the boundaries and checked).",
    )
    flags.DEFINE_alias("kts_penalty", "dcgn_kts_penalty")
    # --max_frames, --feature_names and --feature_sizes: the reading model's.
    model_flags.define_feature_flags()
    flags.DEFINE_bool(
        "overwrite", False, "Copy again the files already in --output_dir."
    )
    flags.DEFINE_integer(
        "num_workers", 1, "Processes that copy files in parallel (one file each)."
    )
    flags.DEFINE_integer(
        "num_shards", 1, "Machines that share the input files (see --shard_index)."
    )
    flags.DEFINE_integer(
        "shard_index",
        0,
        "This machine's share: every --num_shards-th input file from this one "
        "on (0 to --num_shards - 1).",
    )
    flags.mark_flags_as_required(["input_data_pattern", "output_dir"])


if __name__ == "__main__":
    define_flags()
    cli.run(main)
