"""Writes a Kaggle submission CSV: VideoId,LabelConfidencePairs.

    python inference.py --train_dir=runs/dcgn \
        --input_data_pattern='data/frame/test*.tfrecord' \
        --output_file=submission.csv

Predicts with the latest checkpoint of --train_dir, or with an exported
SavedModel (--saved_model_dir). The CSV is written under a temporary name
and renamed when complete, so a file with the final name is always whole.
"""

import collections
import csv
import io
import os

from absl import flags
import numpy as np
import tensorflow as tf

import atomic_files
import cli
import common
import models
import reader_errors
import tfrecord_files

FLAGS = flags.FLAGS
cli.define_program_flags(FLAGS)
flags.adopt_module_key_flags(cli)

flags.DEFINE_string(
    "input_data_pattern",
    "",
    "Glob of the TFRecord files to predict (labels not needed).",
)
flags.DEFINE_string("output_file", "", "Where to write the CSV.")
flags.DEFINE_integer("batch_size", 1024, "Videos per batch.")
flags.DEFINE_integer("top_k", 20, "Classes written per video.")
flags.DEFINE_string(
    "saved_model_dir",
    "",
    "Predict with this exported SavedModel instead of the checkpoints of --train_dir.",
)


def decode_id(video_id):
    """A video id as text; an id that is not UTF-8 is refused by its bytes."""
    if not isinstance(video_id, bytes):
        return video_id
    try:
        return video_id.decode("utf-8")
    except UnicodeDecodeError:
        raise cli.UsageError(
            f"the video id {video_id!r} in {FLAGS.input_data_pattern} is not UTF-8 "
            "text, so it cannot be written to the CSV; fix the id in the record."
        ) from None


def format_row(video_id, predictions, top_k):
    """`id,class score class score ...`, the top_k classes by score.

    An id with a comma, quote or line break is quoted as CSV quotes it
    (RFC 4180); any other id is written as it is, as the starter did.
    """
    top = np.argsort(-predictions, kind="stable")[:top_k]
    pairs = " ".join(f"{label} {predictions[label]:g}" for label in top)
    row = io.StringIO()
    csv.writer(row, lineterminator="\n").writerow([decode_id(video_id), pairs])
    return row.getvalue()


def checkpoint_predictions():
    config = common.load_model_config(FLAGS.train_dir)
    latest = tf.train.latest_checkpoint(FLAGS.train_dir)
    if latest is None:
        raise cli.UsageError(f"no checkpoint in {FLAGS.train_dir}.")
    model = common.restore(models.build_model(config), latest)
    reader = common.program_reader(config)
    dataset = common.explained_batches(
        common.make_dataset(config, FLAGS.input_data_pattern, FLAGS.batch_size, reader),
        FLAGS.input_data_pattern,
    )
    for batch, predictions in common.predict_batches(model, dataset):
        yield batch["video_ids"], predictions


def saved_model_predictions():
    serve = tf.saved_model.load(FLAGS.saved_model_dir).signatures["serving_default"]
    files = tfrecord_files.match_files(FLAGS.input_data_pattern, "input_data_pattern")
    records = tf.data.TFRecordDataset(files).batch(FLAGS.batch_size)
    for serialized in common.explained_batches(records, FLAGS.input_data_pattern):
        try:
            outputs = serve(serialized=serialized)
        except tf.errors.InvalidArgumentError as error:
            # The signature parses the records: its errors are the reader's.
            raise reader_errors.explain_data_error(
                error, FLAGS.input_data_pattern
            ) from None
        yield outputs["video_ids"].numpy(), outputs["predictions"].numpy()


def main(unused_argv):
    if not FLAGS.input_data_pattern or not FLAGS.output_file:
        raise cli.UsageError("--input_data_pattern and --output_file are required.")
    cli.check_positive(FLAGS, "batch_size", "top_k")
    directory = os.path.dirname(os.path.abspath(FLAGS.output_file))
    common.check_writable(directory, "the directory of --output_file")
    predictions = (
        saved_model_predictions() if FLAGS.saved_model_dir else checkpoint_predictions()
    )
    rows = collections.Counter()
    with atomic_files.atomic_open(FLAGS.output_file) as csv_file:
        csv_file.write("VideoId,LabelConfidencePairs\n")
        for video_ids, batch_predictions in predictions:
            for video_id, row in zip(video_ids, batch_predictions):
                csv_file.write(format_row(video_id, row, FLAGS.top_k))
                rows[video_id] += 1
    cli.say(f"wrote {rows.total()} videos to {FLAGS.output_file}")
    repeated = [decode_id(v) for v, n in rows.items() if n > 1]
    if repeated:
        cli.warn(
            f"{len(repeated)} video id(s) occur more than once in "
            f"{FLAGS.input_data_pattern}, each with a row per occurrence "
            f"(a submission needs one row per id): {', '.join(repeated[:5])}"
            + (", ..." if len(repeated) > 5 else "")
        )


if __name__ == "__main__":
    cli.run(main, unknown_flag_hint=cli.MODEL_FLAG_HINT)
