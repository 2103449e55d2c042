"""What the first record of a set of files says: its schema, or a clear error.

A reader inspects the first record before it builds a pipeline. The record
tells which id key the files use (2018 `id`, 2017 `video_id`), how
video-level features are spelt, and whether the
reader's settings fit at all: the wrong kind of record (frame vs video
level), a missing feature, a wrong feature size, a label past num_classes.
Each misfit is a ReaderError that names the file, the record and the flag to
change.
"""

import dataclasses
from typing import Optional

import tensorflow as tf

from tfrecord_files import ReaderError

FRAME_FEATURE_FLAG = "--frame_features"
ID_KEYS = ("id", "video_id")  # 2018 schema, 2017 schema


def id_features(id_key=None):
    """The parse spec of a record's id: id_key's, or both keys when None."""
    keys = ID_KEYS if id_key is None else (id_key,)
    return {key: tf.io.FixedLenFeature([], tf.string, default_value="") for key in keys}


@dataclasses.dataclass(frozen=True)
class RecordSchema:
    """What the first record tells about a set of files.

    id_key: "id" (2018), "video_id" (2017), or None to read whichever is set.
    carried: (key, length) of int64 context features the reader copies into
      each batch as they are (the shot stage's stored boundaries, shots.py).
    feature_keys: the record keys of the features (video level: "rgb" may be
      stored as "mean_rgb"); None: the reader's feature_names as they are
      (frame level) or with a mean_ prefix (video level).
    """

    id_key: Optional[str] = None
    carried: tuple = ()
    feature_keys: Optional[tuple] = None

    def for_serving(self):
        """The schema of an exported model: any id key, nothing carried."""
        return dataclasses.replace(self, id_key=None, carried=())


@dataclasses.dataclass
class FirstRecord:
    path: str
    context: object  # the record's context (an Example's features)
    lists: object  # its feature lists (empty for an Example)
    id_key: str
    record_id: str

    @property
    def where(self):
        return f"{self.path} (record {self.record_id})"


def parse_first_record(path, serialized, kind="tf.train.SequenceExample"):
    """The FirstRecord of a serialized Example or SequenceExample."""
    # An Example's `features` is field 1, like a SequenceExample's context,
    # so one parse serves both and shows which kind the record is.
    try:
        seq = tf.train.SequenceExample.FromString(serialized)
    except Exception as exc:  # protobuf DecodeError
        raise ReaderError(
            f"The first record of {path} is not a {kind} ({exc}); is this a "
            "YouTube-8M TFRecord file?"
        ) from exc
    context = seq.context.feature
    id_key = next((key for key in ID_KEYS if key in context), None)
    if id_key is None:
        raise ReaderError(
            f"The first record of {path} has no video id (neither 'id', the 2018 "
            f"key, nor 'video_id', the 2017 key); its context features are: "
            f"{', '.join(sorted(context)) or '(none)'}."
        )
    values = context[id_key].bytes_list.value
    record_id = values[0].decode("utf-8", "replace") if values else "?"
    return FirstRecord(path, context, seq.feature_lists.feature_list, id_key, record_id)


def _check_sizes(record, names, wanted, found, unit):
    """A ReaderError when a feature's size differs from --feature_sizes."""
    wrong = [
        (n, e, f) for n, e, f in zip(names, wanted, found) if f is not None and f != e
    ]
    if wrong:
        fix = ",".join(str(f if f is not None else e) for e, f in zip(wanted, found))
        detail = "; ".join(
            f"feature '{n}' has {f} values{unit}, expected {e}" for n, e, f in wrong
        )
        raise ReaderError(
            f"In {record.where}: {detail}. Set --feature_sizes to match "
            f"--feature_names={','.join(names)}, e.g. --feature_sizes={fix}."
        )


def _check_labels(record, num_classes):
    if "labels" not in record.context:
        return
    labels = list(record.context["labels"].int64_list.value)
    bad = [label for label in labels if label >= num_classes or label < 0]
    if bad:
        raise ReaderError(
            f"Record {record.record_id} in {record.path} has label(s) {bad} outside "
            f"[0, {num_classes}) (num_classes). Set --num_classes above the "
            "largest label (3862 for the 2018 data, 4716 for the 2017 data)."
        )


def frame_schema(path, serialized, feature_names, feature_sizes, num_classes):
    """The RecordSchema of a frame-level (SequenceExample) first record."""
    record = parse_first_record(path, serialized, "tf.train.SequenceExample")
    context, lists = record.context, record.lists
    missing = [n for n in feature_names if n not in lists]
    if missing:
        video_level = [k for k in context if k.startswith("mean_")]
        if video_level and not lists:
            raise ReaderError(
                f"{record.where} is a video-level record (tf.train.Example with "
                f"{', '.join(sorted(video_level))}), but the frame-level reader "
                f"was asked for it. Drop {FRAME_FEATURE_FLAG} (or use "
                "--frame_features=False) to read video-level data, or point the "
                "data pattern at frame-level files."
            )
        raise ReaderError(
            f"Feature(s) {', '.join(missing)} not found in {record.where}. The "
            f"records hold the frame features: "
            f"{', '.join(sorted(lists)) or '(none)'}. Set --feature_names "
            "(and --feature_sizes) to those."
        )
    found = []
    for name in feature_names:
        frames = lists[name].feature
        found.append(len(frames[0].bytes_list.value[0]) if frames else None)
    _check_sizes(record, feature_names, feature_sizes, found, " per frame")
    _check_labels(record, num_classes)
    return RecordSchema(id_key=record.id_key)


def video_feature_keys(feature_names, context=None):
    """The record keys of feature_names: 'rgb' is read as 'mean_rgb' if need be.

    Without a record to look at, the mean_ spelling (the published one).
    """
    if context is None:
        return tuple(n if n.startswith("mean_") else "mean_" + n for n in feature_names)
    return tuple(
        n if n in context or "mean_" + n not in context else "mean_" + n
        for n in feature_names
    )


def video_schema(path, serialized, feature_names, feature_sizes, num_classes):
    """The RecordSchema of a video-level (Example) first record."""
    record = parse_first_record(path, serialized, "tf.train.Example")
    context, lists = record.context, record.lists
    keys = video_feature_keys(feature_names, context)
    missing = [n for n, k in zip(feature_names, keys) if k not in context]
    if missing:
        if lists:
            raise ReaderError(
                f"{record.where} is a frame-level record (tf.train.SequenceExample "
                f"with feature lists {', '.join(sorted(lists))}), but the "
                f"video-level reader was asked for it. Pass {FRAME_FEATURE_FLAG} to "
                "read frame-level data, or point the data pattern at video-level "
                "files."
            )
        features = sorted(k for k in context if k not in ID_KEYS + ("labels",))
        raise ReaderError(
            f"Feature(s) {', '.join(missing)} not found in {record.where}. The "
            f"records hold the features: {', '.join(features) or '(none)'}. "
            "Set --feature_names (and --feature_sizes) to those."
        )
    found = [len(context[k].float_list.value) for k in keys]
    _check_sizes(record, keys, feature_sizes, found, "")
    _check_labels(record, num_classes)
    return RecordSchema(id_key=record.id_key, feature_keys=keys)
