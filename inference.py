"""Writes a Kaggle submission CSV: VideoId,LabelConfidencePairs.

    python inference.py --train_dir=runs/dcgn \
        --input_data_pattern='data/frame/test*.tfrecord' \
        --output_file=submission.csv

Predicts with the latest checkpoint of --train_dir, or with an exported
SavedModel (--saved_model_dir). The CSV is written under a temporary name
and renamed when complete, so a file with the final name is always whole.
"""

import cli  # first: it quiets TensorFlow's C++ log before TensorFlow loads

import collections
import csv
import heapq
import io
import os
import tarfile

from absl import flags
import numpy as np
import tensorflow as tf

import atomic_files
import common
import eval_util
import reader_errors
import readers

FLAGS = flags.FLAGS
cli.define_program_flags(FLAGS)
cli.define_prediction_flags(FLAGS, batch_size=512, num_readers=1)
flags.adopt_module_key_flags(cli)

flags.DEFINE_string(
    "input_data_pattern",
    "",
    "Glob of the TFRecord files to predict (labels not needed).",
)
flags.DEFINE_string("output_file", "", "Where to write the CSV.")
flags.DEFINE_integer(
    "segment_max_pred", 100000, "Segments listed per class (--segment_labels)."
)
flags.DEFINE_string(
    "segment_label_ids_file",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "segment_label_ids.csv"),
    "The classes of a segment submission: one class id a line (lines that are "
    "not a number are skipped); default: the 1,000 rated classes of the 2019 "
    "challenge.",
)
flags.DEFINE_string(
    "output_model_tgz",
    "",
    "Also bundle the model (model_config.json and the latest checkpoint of "
    "--train_dir) into this .tgz file.",
)
flags.DEFINE_string(
    "input_model_tgz",
    "",
    "Predict with a model bundled by --output_model_tgz (instead of --train_dir).",
)
flags.DEFINE_string(
    "untar_model_dir",
    "/tmp/yt8m-model",
    "Where --input_model_tgz is unpacked.",
)
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


def format_row(video_id, classes, scores):
    """`id,class score class score ...`, the classes in rank order.

    An id with a comma, quote or line break is quoted as CSV quotes it
    (RFC 4180); any other id is written as it is, as the starter did.
    """
    pairs = " ".join(f"{label} {score:g}" for label, score in zip(classes, scores))
    row = io.StringIO()
    csv.writer(row, lineterminator="\n").writerow([decode_id(video_id), pairs])
    return row.getvalue()


def saved_model_predictions(saved_model_dir, data_pattern, batch_size, files):
    """Yields (video ids, predictions) of an exported model over data_pattern.

    files: the readers.RecordFiles the checkpoints' path reads with
    (--compression_type, --skip_corrupt_files); the signature parses.
    """
    serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    matched = files.match(data_pattern, "input_data_pattern")
    records = files.in_order(matched).batch(batch_size)
    progress = cli.Progress(files.count(matched), "videos")
    done = 0
    for serialized in common.explained_batches(records, data_pattern):
        try:
            outputs = serve(serialized=serialized)
        except tf.errors.InvalidArgumentError as error:
            # The signature parses the records: its errors are the reader's.
            raise reader_errors.explain_data_error(error, data_pattern) from None
        done += len(serialized)
        progress.update(done)
        yield outputs["video_ids"].numpy(), outputs["predictions"].numpy()
    progress.update(done, last=True)


def read_class_ids(path, num_classes):
    """The class ids of a segment label ids file (non-numeric lines skipped)."""
    try:
        with tf.io.gfile.GFile(path) as f:
            lines = f.read().splitlines()
    except tf.errors.NotFoundError:
        raise cli.UsageError(
            f"--segment_label_ids_file {path} not found: give a file of class ids, "
            "one a line."
        ) from None
    ids = sorted({int(line) for line in lines if line.strip().isdigit()})
    outside = [i for i in ids if i >= num_classes]
    if not ids or outside:
        raise cli.UsageError(
            f"--segment_label_ids_file {path} "
            + (
                f"has class ids {outside[:5]} outside the model's {num_classes} classes"
                if ids
                else "holds no class id"
            )
            + ": give the ids of the model's vocabulary, one a line."
        )
    return np.asarray(ids)


def write_video_csv(predictions, csv_file):
    """Kaggle's VideoId,LabelConfidencePairs rows; returns the id counts."""
    rows = collections.Counter()
    csv_file.write("VideoId,LabelConfidencePairs\n")
    for video_ids, batch_predictions in predictions:
        classes, scores = eval_util.top_k_indices(batch_predictions, FLAGS.top_k)
        for video_id, row_classes, row_scores in zip(video_ids, classes, scores):
            csv_file.write(format_row(video_id, row_classes, row_scores))
            rows[video_id] += 1
    return rows


def write_segment_csv(predictions, csv_file, class_ids, top_k, max_pred):
    """The 2019 submission: `Class,Segments`, then per class its best segments.

    As in the starter, each segment offers its top_k classes among class_ids,
    and each class keeps the max_pred best offers in a heap, so memory is
    bounded by the heaps whatever the number of videos. Classes in ascending
    order; segments by score, equal scores in input order.
    Returns the number of segments scored.
    """
    heaps = collections.defaultdict(list)
    scored = 0
    top_k = min(top_k, len(class_ids))
    for segment_ids, batch_predictions in predictions:
        allowed = batch_predictions[:, class_ids]
        best, _ = eval_util.top_k_indices(allowed, top_k)
        for segment_id, columns, row in zip(segment_ids, best, allowed):
            scored += 1
            name = decode_id(segment_id)
            for column in columns:
                heap = heaps[int(class_ids[column])]
                # (score, -order): the lowest score, and of equal scores the
                # latest segment, is the first to go.
                entry = (float(row[column]), -scored, name)
                if len(heap) < max_pred:
                    heapq.heappush(heap, entry)
                elif entry > heap[0]:
                    heapq.heapreplace(heap, entry)
    csv_file.write("Class,Segments\n")
    for class_id in sorted(heaps):
        ranked = sorted(heaps[class_id], reverse=True)
        csv_file.write(f"{class_id},{' '.join(e[2] for e in ranked)}\n")
    return scored


def bundle_model(train_dir, path):
    """model_config.json and the latest checkpoint of train_dir as one .tgz."""
    latest = tf.train.latest_checkpoint(train_dir)
    if latest is None:
        raise cli.UsageError(f"no checkpoint in {train_dir} to bundle.")
    with atomic_files.atomic_path(path) as tmp_path:
        with tarfile.open(tmp_path, "w:gz") as tar:
            tar.add(
                os.path.join(train_dir, common.MODEL_CONFIG_FILE),
                common.MODEL_CONFIG_FILE,
            )
            for name in tf.io.gfile.glob(latest + ".*"):
                tar.add(name, os.path.basename(name))
            state = f'model_checkpoint_path: "{os.path.basename(latest)}"\n'.encode()
            info = tarfile.TarInfo("checkpoint")
            info.size = len(state)
            tar.addfile(info, io.BytesIO(state))
    cli.say(f"bundled {latest} into {path}")


def unbundle_model(path, directory):
    """Unpacks a --output_model_tgz bundle; returns the directory."""
    try:
        with tarfile.open(path) as tar:
            tar.extractall(directory, filter="data")
    except (OSError, tarfile.TarError) as error:
        raise cli.UsageError(
            f"--input_model_tgz {path} cannot be unpacked ({error}): give a file "
            "that inference.py --output_model_tgz wrote."
        ) from None
    return directory


def main(unused_argv):
    if not FLAGS.input_data_pattern or not FLAGS.output_file:
        raise cli.UsageError("--input_data_pattern and --output_file are required.")
    cli.check_positive(FLAGS, "batch_size", "top_k", "segment_size", "segment_max_pred")
    directory = os.path.dirname(os.path.abspath(FLAGS.output_file))
    common.check_writable(directory, "the directory of --output_file")
    train_dir = FLAGS.train_dir
    if FLAGS.input_model_tgz:
        if FLAGS["train_dir"].present:
            raise cli.UsageError("give --input_model_tgz or --train_dir, not both.")
        train_dir = unbundle_model(FLAGS.input_model_tgz, FLAGS.untar_model_dir)
    if FLAGS.output_model_tgz:
        bundle_model(train_dir, FLAGS.output_model_tgz)
    if FLAGS.saved_model_dir:
        if FLAGS.segment_labels:
            raise cli.UsageError(
                "--segment_labels predicts with the checkpoints of --train_dir: the "
                "exported model's signature takes whole videos. Drop --saved_model_dir."
            )
        predictions = saved_model_predictions(
            FLAGS.saved_model_dir,
            FLAGS.input_data_pattern,
            FLAGS.batch_size,
            readers.RecordFiles(FLAGS.compression_type, FLAGS.skip_corrupt_files),
        )
    else:
        predictions = (
            (batch["video_ids"], scores)
            for batch, scores in common.model_predictions(
                *common.restored_model(train_dir),
                FLAGS.input_data_pattern,
                FLAGS.batch_size,
                "every" if FLAGS.segment_labels else None,
                FLAGS.segment_size,
            )
        )
    if FLAGS.segment_labels:
        class_ids = read_class_ids(
            FLAGS.segment_label_ids_file,
            common.load_model_config(train_dir).num_classes,
        )
        with atomic_files.atomic_open(FLAGS.output_file) as csv_file:
            scored = write_segment_csv(
                predictions, csv_file, class_ids, FLAGS.top_k, FLAGS.segment_max_pred
            )
        cli.say(
            f"wrote the best of {scored} segments for {len(class_ids)} classes to "
            f"{FLAGS.output_file}"
        )
        return
    with atomic_files.atomic_open(FLAGS.output_file) as csv_file:
        rows = write_video_csv(predictions, csv_file)
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
