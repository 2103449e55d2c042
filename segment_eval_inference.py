"""Scores a segment-level submission (inference.py --segment_labels) against
segment-rated records: mAP@N, as the 2019 YouTube-8M challenge did.

    python segment_eval_inference.py \
        --eval_data_pattern='data/frame/validate*.tfrecord' \
        --submission_file=segments.csv --top_n=100000

Per class of the submission: the listed segments (the first --top_n) that
the records rate for that class, in the submitted order, give an average
precision divided by the class's number of positive segments; classes
without a positive are left out of the mean. The ratings read from the
records can be kept in --label_cache, so that a second run reads that file
instead.
"""

import cli  # first: it quiets TensorFlow's C++ log before TensorFlow loads

import csv
import json
import os

from absl import flags
import tensorflow as tf

import atomic_files
import eval_util
import readers
import record_schema
import segments

FLAGS = flags.FLAGS


def read_ratings(data_pattern, compression_type=""):
    """{("<id>:<start>", class): score} of every rated segment in the records."""
    files = readers.RecordFiles(compression_type)
    records = files.in_order(files.match(data_pattern, "eval_data_pattern"))
    context = {**record_schema.id_features(), **segments.CONTEXT_FEATURES}
    records = records.batch(1024)
    ratings = {}
    for serialized in records:
        parsed, _, _ = tf.io.parse_sequence_example(
            serialized, context_features=context
        )
        ids = [
            (a or b).decode("utf-8")
            for a, b in zip(parsed["id"].numpy(), parsed["video_id"].numpy())
        ]
        rows = parsed["segment_labels"].indices[:, 0].numpy()
        for row, label, start, score in zip(
            rows,
            parsed["segment_labels"].values.numpy(),
            parsed["segment_start_times"].values.numpy(),
            parsed["segment_scores"].values.numpy(),
        ):
            ratings[(f"{ids[row]}:{start}", int(label))] = float(score)
    if not ratings:
        raise cli.UsageError(
            f"No segment ratings in {data_pattern} (--eval_data_pattern): give "
            "segment-rated records (segment_labels, segment_start_times, "
            "segment_scores), such as the 2019 validation shards."
        )
    return ratings


def load_ratings(data_pattern, cache):
    if cache and os.path.exists(cache):
        with open(cache, newline="") as f:
            return {
                (segment, int(label)): float(score)
                for segment, label, score in csv.reader(f)
            }
    ratings = read_ratings(data_pattern, FLAGS.compression_type)
    if cache:
        with atomic_files.atomic_open(cache) as f:
            writer = csv.writer(f, lineterminator="\n")
            for (segment, label), score in sorted(ratings.items()):
                writer.writerow([segment, label, repr(score)])
    return ratings


def read_submission(path):
    """{class: [segment id, ...]} of a Class,Segments file."""
    submission = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as error:
        raise cli.UsageError(
            f"--submission_file {path}: {error.strerror}; give the file that "
            "inference.py --segment_labels wrote."
        ) from None
    for number, line in enumerate(lines, 1):
        if number == 1 and line.startswith("Class,"):
            continue
        class_id, _, segments = line.partition(",")
        if not class_id.strip().isdigit():
            raise cli.UsageError(
                f"{path} line {number} does not start with a class id: {line[:60]!r}"
            )
        submission[int(class_id)] = segments.split()
    return submission


def main(unused_argv):
    if not FLAGS.eval_data_pattern or not FLAGS.submission_file:
        raise cli.UsageError("--eval_data_pattern and --submission_file are required.")
    if FLAGS.top_n < 0:
        raise cli.UsageError(f"--top_n={FLAGS.top_n}: give 0 (no cap) or more.")
    submission = read_submission(FLAGS.submission_file)
    ratings = load_ratings(FLAGS.eval_data_pattern, FLAGS.label_cache)
    map_at_n, aps = eval_util.segment_map_at_n(submission, ratings, FLAGS.top_n)
    skipped = len(submission) - len(aps)
    cli.say(
        f"rated pairs {len(ratings)} | classes {len(aps)}"
        + (f" ({skipped} without a positive left out)" if skipped else "")
        + f" | mAP@{FLAGS.top_n}: {map_at_n:.6f}"
    )
    if FLAGS.eval_results_file:
        atomic_files.atomic_write(
            FLAGS.eval_results_file,
            json.dumps(
                {
                    "map_at_n": map_at_n,
                    "top_n": FLAGS.top_n,
                    "num_classes": len(aps),
                    "num_rated": len(ratings),
                },
                indent=2,
            )
            + "\n",
        )


def define_flags():
    flags.DEFINE_string(
        "eval_data_pattern", "", "Glob of the segment-rated TFRecord files."
    )
    flags.DEFINE_string(
        "submission_file", "", "The Class,Segments file inference.py wrote."
    )
    flags.DEFINE_integer("top_n", 0, "Ranks per class that count (0: all of them).")
    flags.DEFINE_string(
        "label_cache",
        "",
        "Keep the records' ratings in this file, and read it instead of the "
        "records when it exists.",
    )
    flags.DEFINE_string(
        "eval_results_file", "", "Also write the result to this JSON file."
    )
    flags.DEFINE_enum(
        "compression_type", "", ["", "GZIP", "ZLIB"], "Compression of the records."
    )


if __name__ == "__main__":
    define_flags()
    cli.run(main)
