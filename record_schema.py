"""What the first record of a set of files says: its schema, or a clear error.

A reader inspects the first record before it builds a pipeline. The record
tells which id key the files use (2018 `id`, 2017 `video_id`), whether it
stores shot boundaries, how video-level features are spelt, and whether the
reader's settings fit at all: the wrong kind of record (frame vs video
level), a missing feature, a wrong feature size, a label past num_classes.
Each misfit is a ReaderError that names the file, the record and the flag to
change.
"""

import dataclasses
import math
from typing import Optional

import tensorflow as tf

from tfrecord_files import ReaderError

FRAME_FEATURE_FLAG = "--frame_features"
ID_KEYS = ("id", "video_id")  # 2018 schema, 2017 schema
SHOTS_KEY = "shot_boundaries"
# The eq. (8) penalty the stored shots were computed with (absent: 0).
SHOTS_PENALTY_KEY = "shot_kts_penalty"


@dataclasses.dataclass(frozen=True)
class RecordSchema:
    """What the first record tells about a set of files.

    id_key: "id" (2018), "video_id" (2017), or None to read whichever is set.
    stored_shots: m when the records store m + 1 shot_boundaries to use, else 0.
    feature_keys: the record keys of the features (video level: "rgb" may be
      stored as "mean_rgb"); None: the reader's feature_names as they are
      (frame level) or with a mean_ prefix (video level).
    """

    id_key: Optional[str] = None
    stored_shots: int = 0
    feature_keys: Optional[tuple] = None

    def for_serving(self):
        """The schema of an exported model: any id key, shots not stored."""
        return dataclasses.replace(self, id_key=None, stored_shots=0)


@dataclasses.dataclass
class _FirstRecord:
    path: str
    context: object  # the record's context (an Example's features)
    lists: object  # its feature lists (empty for an Example)
    id_key: str
    record_id: str

    @property
    def where(self):
        return f"{self.path} (record {self.record_id})"


def _first_record(path, serialized, kind):
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
    return _FirstRecord(
        path, context, seq.feature_lists.feature_list, id_key, record_id
    )


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


def frame_schema(
    path, serialized, feature_names, feature_sizes, num_classes, num_shots, kts_penalty
):
    """The RecordSchema of a frame-level (SequenceExample) first record."""
    record = _first_record(path, serialized, "tf.train.SequenceExample")
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
    stored_shots = 0
    if num_shots > 0 and SHOTS_KEY in context:
        stored = len(context[SHOTS_KEY].int64_list.value)
        if stored != num_shots + 1:
            raise ReaderError(
                f"{record.where} stores {SHOTS_KEY} for {stored - 1} shots, but "
                f"{num_shots} shots were asked for (--dcgn_shots). Use "
                f"--dcgn_shots={stored - 1}, or read files without stored shots "
                "so that they are computed."
            )
        penalty = context[SHOTS_PENALTY_KEY].float_list.value
        stored_penalty = float(penalty[0]) if penalty else 0.0
        if not math.isclose(stored_penalty, kts_penalty, rel_tol=1e-6):
            raise ReaderError(
                f"{record.where} stores {SHOTS_KEY} computed with KTS penalty "
                f"{stored_penalty:g}, but the model's is {kts_penalty:g} "
                f"(--dcgn_kts_penalty). Copy the records again with "
                f"precompute_shots.py --kts_penalty={kts_penalty:g}, or read files "
                "without stored shots so that they are computed."
            )
        stored_shots = num_shots
    return RecordSchema(id_key=record.id_key, stored_shots=stored_shots)


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
    record = _first_record(path, serialized, "tf.train.Example")
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
