"""Why reading failed, and what to do: the readers' table of causes and hints.

What only a full read can find (a label >= num_classes in a later record, a
frame of the wrong size, a video without frames, NaN features, a corrupt
file) fails inside tf.data. The readers' in-graph checks are made with
`check`, which marks the failure with a cause key of `CAUSES`;
`explain_data_error` maps the TensorFlow error back to that cause and its
hint, naming the records the check printed.
"""

import dataclasses
import re

import tensorflow as tf

import tfrecord_files
from tfrecord_files import ReaderError

_MARK = "YT8M_CHECK"


@dataclasses.dataclass(frozen=True)
class Cause:
    hint: str


CAUSES = {
    "label_out_of_range": Cause(
        "Set --num_classes above the largest label (3862 for the 2018 data, "
        "4716 for the 2017 data)."
    ),
    "frame_feature_size": Cause("Set --feature_sizes to match the records."),
    "feature_lengths": Cause(
        "Remove these records from the data, or fix the program that wrote "
        "them: every feature needs one entry per frame."
    ),
    "segment_lists": Cause(
        "Each rated entry needs a label, a start time and a score: fix the "
        "program that wrote these records."
    ),
    "segment_start": Cause(
        "Remove these ratings, or fix the start times: a segment starts at a "
        "frame index of the video."
    ),
    "no_frames": Cause(
        "Remove these records from the data, or fix the program that wrote them."
    ),
    "not_finite": Cause(
        "Remove these records from the data, or fix the program that wrote them."
    ),
}

_CORRUPT_HINT = (
    "Download them again, remove them from the data pattern, or pass "
    "--skip_corrupt_files (skip_corrupt_files=True) to skip them."
)


def check(condition, cause, data, summarize=10):
    """An assert op that, when `condition` is False, fails with `cause`.

    data: what names the bad records (strings and tensors), printed in order.
    """
    assert cause in CAUSES, cause
    return tf.debugging.Assert(
        condition, [f"{_MARK}:{cause}", *data], summarize=summarize
    )


def _marked_cause(message):
    """(cause, the readable data the check printed) or (None, None)."""
    found = re.search(_MARK + r":(\w+)\]?\s*(.*)", message)
    if not found:
        return None, None
    # Assert prints each data item in brackets: "[a] [b]" -> "a b".
    detail = found.group(2).split("\n")[0].replace("] [", " ").strip("[] ")
    return found.group(1), " ".join(detail.split())


def tensorflow_reason(message):
    """TensorFlow's error message without its internals (the function node,
    the op, the empty name), as a user reads it."""
    text = re.sub(r"\{\{[^}]*\}\}", "", message)
    text = re.sub(r"\[Op:[^\]]*\]", "", text)
    text = re.sub(r"\s*name:\s*$", "", text.strip())
    return " ".join(text.split())


def find_corrupt_files(data_pattern_or_files):
    """Reads every file fully; returns [(path, reason)] of the corrupt or
    truncated ones, sorted.

    TensorFlow's DataLossError names a byte offset but not the file; this
    names it, at the cost of one full read of the data.
    """
    if isinstance(data_pattern_or_files, (list, tuple)):
        files = sorted(data_pattern_or_files)
    else:
        files = tfrecord_files.match_files(data_pattern_or_files)
    bad = []
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset([path]).batch(256):
                pass
        except tf.errors.DataLossError as exc:
            bad.append((path, tensorflow_reason(exc.message)))
    return bad


def explain_data_error(exc, data_pattern):
    """A ReaderError that says what a TensorFlow error while reading means.

    Call it on a tf.errors.OpError raised while iterating a reader's dataset.
    For a DataLossError it reads the files again to name the corrupt ones.
    """
    message = tensorflow_reason(getattr(exc, "message", None) or str(exc))
    where = f"In the data pattern {data_pattern!r}"
    if isinstance(exc, tf.errors.DataLossError):
        try:
            bad = find_corrupt_files(data_pattern)
        except ReaderError:
            bad = []
        names = (
            ", ".join(f"{path} ({reason})" for path, reason in bad)
            if bad
            else f"none found on a re-read ({message})"
        )
        return ReaderError(
            f"Corrupt or truncated TFRecord file(s) in the data pattern "
            f"{data_pattern!r}: {names}. " + _CORRUPT_HINT
        )
    cause, detail = _marked_cause(message)
    if cause is not None:
        return ReaderError(f"{where}: {detail}. {CAUSES[cause].hint}")
    if isinstance(exc, tf.errors.InvalidArgumentError) and (
        "Key:" in message or "Name:" in message
    ):
        return ReaderError(
            f"A record in the data pattern {data_pattern!r} does not fit "
            f"--feature_names/--feature_sizes: {message}"
        )
    return ReaderError(f"Reading the data pattern {data_pattern!r} failed: {message}")


def corrupt_file_error(path, exc):
    """The ReaderError for a file whose first records cannot be read."""
    return ReaderError(
        f"The TFRecord file {path} is corrupt or truncated "
        f"({tensorflow_reason(exc.message)}). " + _CORRUPT_HINT
    )
