"""Copies frame-level TFRecords with KTS shot boundaries stored in them.

Reading the copies with shots (e.g. train.py --dcgn_shots=32) then skips
the KTS computation, which costs more than parsing:

  python precompute_shots.py --input_data_pattern='/data/frame/train*' \
      --output_dir=/data/frame_shots32 --num_shots=32

Each record is copied with the context feature `shot_boundaries` (int64
[num_shots + 1], KTS over its first max_frames frames) added; everything
else is unchanged. Each output file is written whole or not at all.
"""

import os

from absl import flags
import numpy as np
import tensorflow as tf

import atomic_files
import cli
import configs
import kts
import readers
import record_schema
import tfrecord_files

FLAGS = flags.FLAGS


def add_shot_boundaries_to_records(
    in_pattern,
    out_dir,
    num_shots,
    kts_penalty=configs.DCGNConfig.dcgn_kts_penalty,
    max_frames=300,
    feature_names=("rgb", "audio"),
    feature_sizes=(1024, 128),
    batch_size=32,
    overwrite=False,
):
    """Writes copies of frame-level shards with `shot_boundaries` stored.

    Returns:
      list of the files written.
    """
    if num_shots <= 0:
        raise cli.UsageError(f"--num_shots must be > 0, got {num_shots}.")
    if kts_penalty < 0:
        raise cli.UsageError(f"--kts_penalty must be >= 0, got {kts_penalty}.")
    files = tfrecord_files.match_files(in_pattern, "input_data_pattern")
    # Labels are copied as they are, not parsed: any range will do.
    reader = readers.YT8MFrameFeatureReader(
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        max_frames=max_frames,
        num_classes=2**31 - 1,
    )
    _, schema = reader.inspect(in_pattern)
    parse = tf.function(lambda s: reader.parse(s, schema, with_labels=False))
    written = []
    for path in files:
        out_path = os.path.join(out_dir, os.path.basename(path))
        if os.path.abspath(out_path) == os.path.abspath(path):
            raise cli.UsageError(
                f"--output_dir {out_dir} holds the input {path}; choose another directory."
            )
        if os.path.exists(out_path) and not overwrite:
            raise cli.UsageError(f"{out_path} exists; pass --overwrite to replace it.")
        with atomic_files.atomic_path(out_path) as tmp_path:
            with tf.io.TFRecordWriter(tmp_path) as writer:
                for records in tf.data.TFRecordDataset([path]).batch(batch_size):
                    batch = parse(records)
                    shots = np.asarray(
                        kts.batch_shot_boundaries(
                            batch["video_matrix"].numpy(),
                            batch["num_frames"].numpy(),
                            num_shots,
                            kts_penalty,
                        ),
                        np.int64,
                    )
                    for serialized, bounds in zip(records.numpy(), shots):
                        seq = tf.train.SequenceExample.FromString(serialized)
                        seq.context.feature[record_schema.SHOTS_KEY].int64_list.value[
                            :
                        ] = bounds
                        seq.context.feature[
                            record_schema.SHOTS_PENALTY_KEY
                        ].float_list.value[:] = [kts_penalty]
                        writer.write(seq.SerializeToString())
        written.append(out_path)
    return written


def main(argv):
    del argv
    written = add_shot_boundaries_to_records(
        FLAGS.input_data_pattern,
        FLAGS.output_dir,
        FLAGS.num_shots,
        kts_penalty=FLAGS.kts_penalty,
        max_frames=FLAGS.max_frames,
        feature_names=FLAGS.feature_names.split(","),
        feature_sizes=[int(s) for s in FLAGS.feature_sizes.split(",")],
        overwrite=FLAGS.overwrite,
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
        "num_shots",
        32,
        "Shots per video; stores num_shots+1 boundaries in the context feature "
        "shot_boundaries.",
    )
    flags.DEFINE_float(
        "kts_penalty",
        configs.DCGNConfig.dcgn_kts_penalty,
        "C of KTS eq. (8); give the --dcgn_kts_penalty of the model that reads "
        "the copies (it is stored beside the boundaries and checked).",
    )
    flags.DEFINE_integer("max_frames", 300, "Frames segmented per video.")
    flags.DEFINE_string("feature_names", "rgb,audio", "Frame feature names.")
    flags.DEFINE_string("feature_sizes", "1024,128", "Their sizes.")
    flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
    flags.mark_flags_as_required(["input_data_pattern", "output_dir"])


if __name__ == "__main__":
    define_flags()
    cli.run(main)
