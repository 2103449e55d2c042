r"""Predictions a person can read: class names, and each video's scores over time.

    python show_predictions.py --train_dir=runs/dcgn \
        --input_data_pattern='features/*.tfrecord' --output_dir=runs/labels

For each video of the records: its --top_k classes with their names from
the YouTube-8M vocabulary (printed, and written to output_dir/labels.csv as
`VideoId,Rank,Class,Name,Score`), and output_dir/<video>.png, the scores of
those classes on every --segment_size-frame segment of the video (5 s at
the dataset's one frame a second) over the video's time, which shows where
in the video each class is seen. inference.py's Kaggle CSV is unchanged;
this is the view for a person.
"""

import cli  # first: it quiets TensorFlow's C++ log before TensorFlow loads

import collections
import csv
import os
import re

from absl import flags
import numpy as np

import atomic_files
import common

FLAGS = flags.FLAGS
cli.define_program_flags(FLAGS)
flags.adopt_module_key_flags(cli)

flags.DEFINE_string("input_data_pattern", "", "Glob of the TFRecord files to label.")
flags.DEFINE_string("output_dir", "", "Where labels.csv and the pictures go.")
flags.DEFINE_string(
    "vocabulary_file",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "vocabulary.csv"),
    "CSV with the columns Index and Name (default: the YouTube-8M 2018 "
    "vocabulary of 3862 classes).",
)
flags.DEFINE_integer("top_k", 5, "Classes shown per video.")
flags.DEFINE_integer("batch_size", 64, "Videos (segments for the pictures) per batch.")
flags.DEFINE_float(
    "frames_per_second", 1.0, "Frames per second of the records (for the time axis)."
)
flags.DEFINE_bool(
    "pictures", True, "Draw the scores over time (--nopictures: labels only)."
)

PRINTED_VIDEOS = 20


def read_vocabulary(path):
    """{class index: name}; a class without a name is called 'class N'."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as error:
        raise cli.UsageError(f"--vocabulary_file={path}: {error.strerror}.") from None
    if not rows or not {"Index", "Name"} <= set(rows[0]):
        raise cli.UsageError(
            f"--vocabulary_file={path} needs the columns Index and Name (the "
            "YouTube-8M vocabulary.csv has them)."
        )
    try:
        return {int(row["Index"]): row["Name"] for row in rows if row["Name"]}
    except ValueError as error:
        raise cli.UsageError(
            f"--vocabulary_file={path}: an Index is not a number ({error})."
        ) from None


def class_name(vocabulary, label):
    return vocabulary.get(int(label), f"class {label}")


def top_classes(predictions, top_k):
    return np.argsort(-predictions, kind="stable")[:top_k]


def picture_name(video_id, taken):
    """A file name for the video's picture: its id with only safe characters."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", video_id).strip("._") or "video"
    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return name


def segment_scores(config, model, tops):
    """{video id: (frame spans [S, 2], scores [S, top_k])} of each video's top classes."""
    found = collections.defaultdict(list)
    for batch, predictions in common.model_predictions(
        config,
        model,
        FLAGS.input_data_pattern,
        FLAGS.batch_size,
        "every",
        FLAGS.segment_size,
    ):
        for segment_id, length, scores in zip(
            batch["video_ids"], batch["num_frames"], predictions
        ):
            video_id, start = segment_id.decode("utf-8", "replace").rsplit(":", 1)
            span = (int(start), int(start) + int(length))
            found[video_id].append((span, scores[tops[video_id]]))
    result = {}
    for video_id, segments in found.items():
        segments.sort(key=lambda segment: segment[0])
        result[video_id] = (
            np.array([span for span, _ in segments]),
            np.stack([scores for _, scores in segments]),
        )
    return result


def draw(path, video_id, spans, scores, names):
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    seconds = spans / FLAGS.frames_per_second
    step = FLAGS.segment_size / FLAGS.frames_per_second
    figure, axes = plt.subplots(figsize=(8, 3.5))
    for column, name in enumerate(names):
        # Each segment's score holds over its whole span, the last one's too.
        axes.step(
            np.append(seconds[:, 0], seconds[-1, 1]),
            np.append(scores[:, column], scores[-1, column]),
            where="post",
            label=name,
        )
    axes.set_xlabel("time in the video (s)")
    axes.set_ylabel(f"score of each {step:g} s segment")
    axes.set_ylim(0, 1.02)
    axes.set_title(video_id)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.tight_layout()
    with atomic_files.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


def main(argv):
    del argv
    if not FLAGS.input_data_pattern or not FLAGS.output_dir:
        raise cli.UsageError("--input_data_pattern and --output_dir are required.")
    cli.check_positive(FLAGS, "top_k", "segment_size", "batch_size")
    vocabulary = read_vocabulary(FLAGS.vocabulary_file)
    common.check_writable(FLAGS.output_dir, "--output_dir")
    # One restored model for both passes: a checkpoint train.py writes in
    # between must not give the pictures other scores than the labels.
    config, model = common.restored_model(FLAGS.train_dir)
    tops, rows = {}, []
    for batch, predictions in common.model_predictions(
        config, model, FLAGS.input_data_pattern, FLAGS.batch_size
    ):
        for raw_id, scores in zip(batch["video_ids"], predictions):
            video_id = raw_id.decode("utf-8", "replace")
            tops[video_id] = top_classes(scores, FLAGS.top_k)
            named = [(c, class_name(vocabulary, c), scores[c]) for c in tops[video_id]]
            rows.extend(
                (video_id, rank, c, name, f"{score:.6f}")
                for rank, (c, name, score) in enumerate(named, start=1)
            )
            if len(tops) <= PRINTED_VIDEOS:
                cli.say(
                    f"{video_id}: " + ", ".join(f"{n} ({s:.2f})" for _, n, s in named)
                )
    if len(tops) > PRINTED_VIDEOS:
        cli.say(f"... and {len(tops) - PRINTED_VIDEOS} more videos in labels.csv")
    labels_path = os.path.join(FLAGS.output_dir, "labels.csv")
    with atomic_files.atomic_open(labels_path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["VideoId", "Rank", "Class", "Name", "Score"])
        writer.writerows(rows)
    cli.say(
        f"wrote the top {FLAGS.top_k} classes of {len(tops)} videos to {labels_path}"
    )
    if not FLAGS.pictures:
        return
    if not config.frame_features:
        cli.warn(
            "the model reads video-level features, which have no time: no pictures."
        )
        return
    taken = set()
    for video_id, (spans, scores) in segment_scores(config, model, tops).items():
        names = [class_name(vocabulary, c) for c in tops[video_id]]
        draw(
            os.path.join(FLAGS.output_dir, picture_name(video_id, taken)),
            video_id,
            spans,
            scores,
            names,
        )
    cli.say(f"drew {len(taken)} pictures of scores over time in {FLAGS.output_dir}")


if __name__ == "__main__":
    cli.run(main)
