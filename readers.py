"""YouTube-8M TFRecords -> tf.data batches, frame level and video level.

A batch is a dict (see DESIGN.md, "Data"):

  video_ids       string  [B]
  video_matrix    float32 [B, max_frames, D] (frame level) or [B, D] (video
                  level); D = sum(feature_sizes), the features concatenated in
                  feature_names order. Frames past num_frames are exactly 0.
  num_frames      int32   [B] (1 for video level)
  labels          float32 [B, num_classes] multi-hot (all zero when the
                  records carry no `labels`, as in test shards)
  shot_boundaries int32   [B, num_shots + 1], only when num_shots > 0

Every dimension except the batch one is static, so Keras models build from
the dataset's element_spec.

Records are batched as serialized strings first and parsed a whole batch at a
time (parse_sequence_example / parse_example, then decode_raw on the [B, T]
frame bytes): one op call per batch instead of one per record keeps the
pipeline at several thousand videos a second on two cores.

Problems with the data surface as `ReaderError`, raised while the dataset is
built wherever the first record can tell (no file, wrong kind of records,
missing feature, wrong feature size). What only the full read can find (a
label >= num_classes in a later record, a corrupt file) raises a TensorFlow
error during iteration; `explain_data_error` turns it into a ReaderError that
names the record or the file.

Records that would train on nothing are refused by name, never dropped or
passed on silently: a video-level record with a NaN or infinite feature value
(the loss and then every weight would become NaN), and a frame-level video
without frames (num_frames 0, also when one feature's list is missing).
"""

import os
import struct

from absl import logging
import numpy as np
import tensorflow as tf

FRAME_FEATURE_FLAG = "--frame_features"
_ID_KEYS = ("id", "video_id")  # 2018 schema, 2017 schema
_SHOTS_KEY = "shot_boundaries"
# Tag carried by the in-graph label check, so explain_data_error knows it.
_LABEL_ERROR_TAG = "YT8M_LABEL_OUT_OF_RANGE"
_FRAME_SIZE_ERROR_TAG = "YT8M_FRAME_FEATURE_SIZE"
_NO_FRAMES_ERROR_TAG = "YT8M_NO_FRAMES"
_NOT_FINITE_ERROR_TAG = "YT8M_NOT_FINITE"
_PATTERN_HINT = (
    "the data pattern flag (--train_data_pattern, "
    "--eval_data_pattern or --input_data_pattern)"
)


class ReaderError(ValueError):
    """The data does not fit the reader's settings; the message says how."""


def dequantize(feat_vector, max_quantized_value=2.0, min_quantized_value=-2.0):
    """uint8 -> float32 as the starter did: x * 4/255 + 4/512 - 2.

    Args:
      feat_vector: uint8 (or any numeric) tensor, any shape.
    Returns:
      float32 tensor of the same shape.
    """
    quantized_range = max_quantized_value - min_quantized_value
    scalar = quantized_range / 255.0
    bias = (quantized_range / 512.0) + min_quantized_value
    return tf.cast(feat_vector, tf.float32) * scalar + bias


def dequantize_frames(video_matrix, num_frames):
    """Dequantises uint8 frames [B, T, D]; frames past num_frames [B] -> 0.0.

    Returns float32 [B, T, D]. With dequantize=False the reader skips this
    and the model dequantises inside its compiled step instead (models.py),
    so the host ships 4x fewer bytes.
    """
    if video_matrix.dtype == tf.uint8:
        # One fused pass (min + x * 4/255, the same float32 arithmetic as
        # `dequantize`) instead of cast, multiply and add: on two cores the
        # float passes over [B, 300, 1152] are what limits the pipeline.
        low = 4.0 / 512.0 - 2.0
        values = tf.quantization.dequantize(
            tf.bitcast(video_matrix, tf.quint8), low, low + 4.0, mode="MIN_COMBINED"
        )
    else:
        values = dequantize(video_matrix)
    mask = tf.sequence_mask(num_frames, tf.shape(video_matrix)[1], tf.float32)
    return values * mask[:, :, None]


# ----------------------------------------------------------------- files ---


def match_files(data_pattern):
    """Sorted file names matching a (comma-separated) glob pattern.

    Raises:
      ReaderError: nothing matches.
    """
    files = set()
    for pattern in str(data_pattern).split(","):
        pattern = pattern.strip()
        if pattern:
            files.update(tf.io.gfile.glob(pattern))
    if not files:
        raise ReaderError(
            f"No file matches the data pattern {data_pattern!r}. Check "
            f"{_PATTERN_HINT}: it is a glob such as "
            "'/data/yt8m/frame/train*.tfrecord', and the files must exist."
        )
    return sorted(files)


def _records_of(path):
    """Iterates one file's serialized records (eagerly, as numpy bytes)."""
    for record in tf.data.TFRecordDataset([path]):
        yield record.numpy()


def find_corrupt_files(data_pattern_or_files):
    """Reads every file fully; returns the corrupt or truncated ones, sorted.

    TensorFlow's DataLossError names a byte offset but not the file; programs
    call this after one to name it. Costs one full read of the data.

    Args:
      data_pattern_or_files: a glob pattern (comma-separated allowed) or a list
        of file names.
    Returns:
      list of file names whose records cannot all be read.
    """
    if isinstance(data_pattern_or_files, (list, tuple)):
        files = sorted(data_pattern_or_files)
    else:
        files = match_files(data_pattern_or_files)
    bad = []
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset([path]).batch(256):
                pass
        except tf.errors.DataLossError as exc:
            logging.warning(
                "Corrupt or truncated TFRecord file %s: %s", path, exc.message.strip()
            )
            bad.append(path)
    return bad


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def _masked_crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def check_tfrecord_framing(path):
    """Walks a TFRecord file's record headers without reading the payloads.

    Catches truncated files (an interrupted copy, the usual corruption) and
    garbled record lengths in the time of a few small reads per record;
    payload bit flips need find_corrupt_files.

    Returns:
      None when the framing is sound, else a short reason.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        size = f.size()
        offset = 0
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                return f"truncated record header at byte {offset}"
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc32c(header[:8]) != length_crc:
                return f"corrupt record length at byte {offset}"
            end = offset + 12 + length + 4
            if end > size:
                return (
                    f"truncated record at byte {offset} (needs {end} bytes, "
                    f"file has {size})"
                )
            f.seek(end)
            offset = end
    return None


def _first_record(files, skip_corrupt):
    """(path, serialized) of the first record in the sorted files."""
    for path in files:
        try:
            for record in _records_of(path):
                return path, record
        except tf.errors.DataLossError as exc:
            if skip_corrupt:
                continue
            raise ReaderError(
                f"The TFRecord file {path} is corrupt or truncated "
                f"({exc.message.strip()}). Download it again, remove it from the "
                "data pattern, or pass --skip_corrupt_files (skip_corrupt_files=True) "
                "to skip such files."
            ) from exc
    raise ReaderError(
        f"The {len(files)} file(s) matching the data pattern hold no records "
        f"(first: {files[0]}). Check {_PATTERN_HINT}."
    )


# ---------------------------------------------------------------- readers ---


class _BaseReader:
    """What both readers share: file handling, the tf.data plumbing, checks."""

    frame_level = None  # set by subclasses

    def __init__(
        self,
        num_classes=3862,
        feature_names=("rgb", "audio"),
        feature_sizes=(1024, 128),
        max_frames=300,
        skip_corrupt_files=False,
        dequantize=True,
    ):
        if isinstance(feature_names, str):
            feature_names = [n.strip() for n in feature_names.split(",") if n.strip()]
        if isinstance(feature_sizes, str):
            feature_sizes = [int(s) for s in feature_sizes.split(",") if s.strip()]
        feature_names = tuple(feature_names)
        feature_sizes = tuple(int(s) for s in feature_sizes)
        if len(feature_names) != len(feature_sizes):
            raise ReaderError(
                f"--feature_names has {len(feature_names)} entries "
                f"({','.join(feature_names)}) but --feature_sizes has "
                f"{len(feature_sizes)} ({','.join(map(str, feature_sizes))}); "
                "give one size per name."
            )
        if not feature_names:
            raise ReaderError("--feature_names is empty; give at least one feature.")
        self.num_classes = int(num_classes)
        self.feature_names = feature_names
        self.feature_sizes = feature_sizes
        self.feature_dim = sum(feature_sizes)
        self.max_frames = int(max_frames)
        self.skip_corrupt_files = bool(skip_corrupt_files)
        self.dequantize = bool(dequantize)
        # Filled in by dataset() from the first record: which id key the files
        # use. parse_serialized without it reads both keys.
        self._id_key = None

    # -- to be provided by subclasses
    def _inspect(self, path, serialized, num_shots):
        raise NotImplementedError

    def _parse(self, serialized, id_key, stored_shots):
        raise NotImplementedError

    def parse_serialized(self, serialized):
        """Parses a batch of serialized records with pure TF ops.

        Args:
          serialized: string tensor [N] of serialized records.
        Returns:
          the batch dict (module docstring) without shot_boundaries.
        """
        return self._parse(serialized, self._id_key, stored_shots=0)

    # -- shared parsing pieces
    def _parse_ids(self, context, id_key):
        if id_key is not None:
            return context[id_key]
        # Schema unknown (e.g. a serving signature): take whichever key is set.
        return tf.where(
            tf.strings.length(context["id"]) > 0, context["id"], context["video_id"]
        )

    def _id_features(self, id_key):
        keys = _ID_KEYS if id_key is None else (id_key,)
        return {k: tf.io.FixedLenFeature([], tf.string, default_value="") for k in keys}

    def _labels_to_multi_hot(self, labels, video_ids):
        """SparseTensor [B, L] int64 -> float32 [B, num_classes], checked."""
        values = labels.values
        rows = labels.indices[:, 0]
        bad = tf.logical_or(values >= self.num_classes, values < 0)
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(bad)),
            [
                f"{_LABEL_ERROR_TAG}: label outside [0, {self.num_classes}) "
                "(num_classes) in record id(s)",
                tf.gather(video_ids, tf.boolean_mask(rows, bad)),
                "with label(s)",
                tf.boolean_mask(values, bad),
                "- set --num_classes above the largest label (3862 for the 2018 "
                "data, 4716 for the 2017 data)",
            ],
            summarize=20,
        )
        with tf.control_dependencies([check]):
            indices = tf.stack([rows, values], axis=1)
        shape = tf.stack(
            [labels.dense_shape[0], tf.constant(self.num_classes, tf.int64)]
        )
        dense = tf.scatter_nd(indices, tf.ones_like(values, tf.float32), shape)
        # A label repeated in one record would add up; multi-hot means 1.
        dense = tf.minimum(dense, 1.0)
        dense.set_shape([video_ids.shape[0], self.num_classes])
        return dense

    # -- the pipeline
    def dataset(
        self,
        data_pattern,
        batch_size,
        training=False,
        num_epochs=1,
        num_readers=8,
        num_shots=0,
        shuffle_buffer=1024,
        seed=None,
        input_context=None,
    ):
        """A tf.data.Dataset of batch dicts (module docstring) from TFRecords.

        Args:
          data_pattern: glob of TFRecord files (comma-separated globs allowed).
          batch_size: global batch size; with input_context, each pipeline gets
            input_context.get_per_replica_batch_size(batch_size).
          training: False: every record exactly once, files in sorted order, no
            shuffling, last partial batch kept (evaluation, inference). True:
            files interleaved num_readers at a time, records shuffled, repeated
            num_epochs times (None: forever), batches of exactly batch_size.
          num_epochs: passes over the data when training.
          num_readers: files read in parallel when training.
          num_shots: > 0 adds shot_boundaries int32 [B, num_shots + 1] (KTS,
            computed by kts.batch_shot_boundaries unless the records store them).
            Frame level only.
          shuffle_buffer: records in the shuffle buffer when training (a
            frame-level record is ~350 KB).
          seed: seed for file and record shuffling.
          input_context: tf.distribute.InputContext or None. Shards by file when
            there are at least num_input_pipelines files, else by record.
        Raises:
          ReaderError: the files do not fit the reader's settings.
        """
        files = match_files(data_pattern)
        if self.skip_corrupt_files:
            files = self._drop_corrupt(files)
        path, first = _first_record(files, self.skip_corrupt_files)
        id_key, stored_shots = self._inspect(path, first, num_shots)
        self._id_key = id_key
        if num_shots > 0 and not stored_shots:
            _import_kts()  # fail now, not inside a tf.data thread

        if input_context is not None:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
        per_file = self._file_dataset_fn()

        num_pipelines = input_context.num_input_pipelines if input_context else 1
        shard_by_file = num_pipelines > 1 and len(files) >= num_pipelines
        if shard_by_file:
            files = files[input_context.input_pipeline_id :: num_pipelines]
        file_ds = tf.data.Dataset.from_tensor_slices(files)

        # Too few files to split between pipelines: every pipeline reads them
        # all in the same (sorted, deterministic) order and keeps every n-th
        # record, so the shards are disjoint; shuffling comes after the split.
        split_records = num_pipelines > 1 and not shard_by_file
        if training:
            if not split_records:
                file_ds = file_ds.shuffle(
                    len(files), seed=seed, reshuffle_each_iteration=True
                )
            records = file_ds.interleave(
                per_file,
                cycle_length=max(1, min(num_readers, len(files))),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=split_records,
            )
        else:
            # Sequential and in order: the byte read is ~20x faster than parsing,
            # so parallel reads would buy nothing here.
            records = file_ds.flat_map(per_file)
        if split_records:
            records = records.shard(num_pipelines, input_context.input_pipeline_id)
        if training:
            # Repeating after the shuffle keeps epochs whole: each record once
            # per epoch, files and records reshuffled every epoch.
            records = records.shuffle(shuffle_buffer, seed=seed).repeat(num_epochs)
        batches = records.batch(batch_size, drop_remainder=training)

        def parse(serialized):
            batch = self._parse(serialized, id_key, stored_shots)
            if num_shots > 0 and not stored_shots:
                batch["shot_boundaries"] = self._compute_shots(batch, num_shots)
            return batch

        return batches.map(
            parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training
        ).prefetch(tf.data.AUTOTUNE)

    def _file_dataset_fn(self):
        skip = self.skip_corrupt_files

        def per_file(path):
            ds = tf.data.TFRecordDataset(path, buffer_size=1 << 20)
            if skip:
                # A payload corrupted inside a well-framed file: keep the records
                # before it, drop the rest of that file (TF logs each case).
                ds = ds.ignore_errors(log_warning=True)
            return ds

        return per_file

    def _drop_corrupt(self, files):
        kept, skipped = [], []
        for path in files:
            reason = check_tfrecord_framing(path)
            if reason is None:
                kept.append(path)
            else:
                skipped.append(f"{path} ({reason})")
        if skipped:
            logging.warning(
                "skip_corrupt_files: skipping %d of %d files that are corrupt or "
                "truncated: %s",
                len(skipped),
                len(files),
                "; ".join(skipped),
            )
        if not kept:
            raise ReaderError(
                f"All {len(files)} files matching the data pattern are corrupt or "
                f"truncated: {'; '.join(skipped)}"
            )
        return kept

    def _compute_shots(self, batch, num_shots):
        raise ReaderError(
            "Shots (num_shots > 0, --dcgn_shots) need frame-level features: use "
            f"{FRAME_FEATURE_FLAG} with frame-level records."
        )


class YT8MFrameFeatureReader(_BaseReader):
    """Frame-level tf.train.SequenceExample records.

    Context: `id` (2018) or `video_id` (2017) bytes, `labels` int64 list
    (absent in test shards), optionally `shot_boundaries` int64 list.
    Feature lists: one per feature name, one bytes value of feature_size uint8
    values per frame.

    Batch: video_matrix float32 [B, max_frames, D] (uint8 when constructed with
    dequantize=False; then dequantize_frames belongs in the model step),
    num_frames int32 [B] = min(frames, max_frames), frames past it exactly 0.
    """

    frame_level = True

    def _inspect(self, path, serialized, num_shots):
        try:
            seq = tf.train.SequenceExample.FromString(serialized)
        except Exception as exc:  # protobuf DecodeError
            raise ReaderError(
                f"The first record of {path} is not a tf.train.SequenceExample "
                f"({exc}); is this a YouTube-8M TFRecord file?"
            ) from exc
        context = seq.context.feature
        lists = seq.feature_lists.feature_list
        id_key = _find_id_key(context, path)
        record_id = _record_id(context, id_key)
        where = f"{path} (record {record_id})"

        missing = [n for n in self.feature_names if n not in lists]
        if missing:
            video_level = [k for k in context if k.startswith("mean_")]
            if video_level and not lists:
                raise ReaderError(
                    f"{where} is a video-level record (tf.train.Example with "
                    f"{', '.join(sorted(video_level))}), but the frame-level reader "
                    f"was asked for it. Drop {FRAME_FEATURE_FLAG} (or use "
                    "--frame_features=False) to read video-level data, or point the "
                    "data pattern at frame-level files."
                )
            raise ReaderError(
                f"Feature(s) {', '.join(missing)} not found in {where}. The "
                f"records hold the frame features: "
                f"{', '.join(sorted(lists)) or '(none)'}. Set --feature_names "
                "(and --feature_sizes) to those."
            )

        found = []
        for name in self.feature_names:
            frames = lists[name].feature
            found.append(len(frames[0].bytes_list.value[0]) if frames else None)
        wrong = [
            (n, e, f)
            for n, e, f in zip(self.feature_names, self.feature_sizes, found)
            if f is not None and f != e
        ]
        if wrong:
            fix = ",".join(
                str(f if f is not None else e)
                for e, f in zip(self.feature_sizes, found)
            )
            detail = "; ".join(
                f"feature '{n}' has {f} values per frame, expected {e}"
                for n, e, f in wrong
            )
            raise ReaderError(
                f"In {where}: {detail}. Set --feature_sizes to match "
                f"--feature_names={','.join(self.feature_names)}, e.g. "
                f"--feature_sizes={fix}."
            )

        _check_first_labels(context, record_id, path, self.num_classes)
        stored_shots = 0
        if num_shots > 0 and _SHOTS_KEY in context:
            stored = len(context[_SHOTS_KEY].int64_list.value)
            if stored != num_shots + 1:
                raise ReaderError(
                    f"{where} stores {_SHOTS_KEY} for {stored - 1} shots, but "
                    f"{num_shots} shots were asked for (--dcgn_shots). Use "
                    f"--dcgn_shots={stored - 1}, or read files without stored shots "
                    "so that they are computed."
                )
            stored_shots = num_shots
        return id_key, stored_shots

    def _parse(self, serialized, id_key, stored_shots, with_labels=True):
        context_features = self._id_features(id_key)
        if with_labels:
            context_features["labels"] = tf.io.VarLenFeature(tf.int64)
        if stored_shots:
            context_features[_SHOTS_KEY] = tf.io.FixedLenFeature(
                [stored_shots + 1], tf.int64
            )
        sequence_features = {
            name: tf.io.FixedLenSequenceFeature([], tf.string)
            for name in self.feature_names
        }
        context, sequences, lengths = tf.io.parse_sequence_example(
            serialized,
            context_features=context_features,
            sequence_features=sequence_features,
        )

        video_ids = self._parse_ids(context, id_key)
        max_frames = self.max_frames
        num_frames = None
        parts = []
        checks = []
        for name, size in zip(self.feature_names, self.feature_sizes):
            frames = sequences[name][:, :max_frames]  # [B, T<=max_frames] bytes
            # decode_raw with fixed_length pads or cuts silently; a frame of the
            # wrong size must fail instead. Missing frames parse as "".
            lens = tf.strings.length(frames)
            wrong = tf.logical_and(tf.not_equal(lens, size), tf.not_equal(lens, 0))
            checks.append(
                tf.debugging.Assert(
                    tf.logical_not(tf.reduce_any(wrong)),
                    [
                        f"{_FRAME_SIZE_ERROR_TAG}: feature {name} expects {size} bytes "
                        "per frame (--feature_sizes) but found",
                        tf.unique(tf.boolean_mask(lens, wrong)).y,
                        "in record id(s)",
                        tf.boolean_mask(video_ids, tf.reduce_any(wrong, axis=1)),
                    ],
                    summarize=10,
                )
            )
            parts.append(tf.io.decode_raw(frames, tf.uint8, fixed_length=size))
            n = tf.cast(tf.minimum(lengths[name], max_frames), tf.int32)
            num_frames = n if num_frames is None else tf.minimum(num_frames, n)

        # A video without frames (or without any frame of one feature) has
        # nothing to learn from or predict with: reject it by name rather
        # than train on padding.
        empty = tf.equal(num_frames, 0)
        checks.append(
            tf.debugging.Assert(
                tf.logical_not(tf.reduce_any(empty)),
                [
                    f"{_NO_FRAMES_ERROR_TAG}: no frames (of at least one of "
                    f"the features {', '.join(self.feature_names)}) in record id(s)",
                    tf.boolean_mask(video_ids, empty),
                ],
                summarize=10,
            )
        )
        with tf.control_dependencies(checks):
            video = parts[0] if len(parts) == 1 else tf.concat(parts, axis=2)
        pad = max_frames - tf.shape(video)[1]
        video = tf.pad(video, [[0, 0], [0, pad], [0, 0]])
        video = tf.ensure_shape(video, [None, max_frames, self.feature_dim])
        if self.dequantize:
            # Features of unequal length leave bytes past the shorter one; the
            # mask zeroes them along with the padding.
            video = dequantize_frames(video, num_frames)
        else:
            mask = tf.sequence_mask(num_frames, max_frames, tf.uint8)
            video = video * mask[:, :, None]

        batch = {
            "video_ids": video_ids,
            "video_matrix": video,
            "num_frames": num_frames,
        }
        if with_labels:
            batch["labels"] = self._labels_to_multi_hot(context["labels"], video_ids)
        if stored_shots:
            # Stored for the record's frames; a smaller max_frames cuts the video,
            # so its boundaries are cut to match (s_m = num_frames still holds).
            shots = tf.cast(context[_SHOTS_KEY], tf.int32)
            shots = tf.minimum(shots, num_frames[:, None])
            shots = tf.concat([shots[:, :-1], num_frames[:, None]], axis=1)
            batch["shot_boundaries"] = tf.ensure_shape(shots, [None, stored_shots + 1])
        return batch

    def _compute_shots(self, batch, num_shots):
        def shots_fn(video_matrix, num_frames):
            kts = _import_kts()
            frames = video_matrix.numpy()
            if frames.dtype != np.float32:
                frames = frames.astype(np.float32) * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)
            return np.asarray(
                kts.batch_shot_boundaries(frames, num_frames.numpy(), num_shots),
                np.int32,
            )

        shots = tf.py_function(
            shots_fn, [batch["video_matrix"], batch["num_frames"]], tf.int32
        )
        shots.set_shape([None, num_shots + 1])
        return shots


class YT8MAggregatedFeatureReader(_BaseReader):
    """Video-level tf.train.Example records (mean_rgb float[1024], ...).

    A feature name is looked up as given and then with a `mean_` prefix, so
    both feature_names=("mean_rgb", "mean_audio") (the starter's spelling) and
    the frame-level default ("rgb", "audio") read these records.
    Batch: video_matrix float32 [B, D], num_frames int32 [B] all 1.
    max_frames is ignored.
    """

    frame_level = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._keys = None

    def _record_keys(self, context=None):
        """The record keys for feature_names ('rgb' -> 'mean_rgb' if needed)."""
        if context is None:
            return self._keys or tuple(
                n if n.startswith("mean_") else "mean_" + n for n in self.feature_names
            )
        return tuple(
            n if n in context or "mean_" + n not in context else "mean_" + n
            for n in self.feature_names
        )

    def _inspect(self, path, serialized, num_shots):
        try:
            seq = tf.train.SequenceExample.FromString(serialized)
        except Exception as exc:  # protobuf DecodeError
            raise ReaderError(
                f"The first record of {path} is not a tf.train.Example ({exc}); "
                "is this a YouTube-8M TFRecord file?"
            ) from exc
        # An Example's `features` is field 1, like a SequenceExample's context,
        # so one parse serves both and shows frame-level records as well.
        context = seq.context.feature
        lists = seq.feature_lists.feature_list
        id_key = _find_id_key(context, path)
        record_id = _record_id(context, id_key)
        where = f"{path} (record {record_id})"
        if num_shots > 0:
            self._compute_shots(None, num_shots)

        keys = self._record_keys(context)
        missing = [n for n, k in zip(self.feature_names, keys) if k not in context]
        if missing:
            if lists:
                raise ReaderError(
                    f"{where} is a frame-level record (tf.train.SequenceExample with "
                    f"feature lists {', '.join(sorted(lists))}), but the video-level "
                    f"reader was asked for it. Pass {FRAME_FEATURE_FLAG} to read "
                    "frame-level data, or point the data pattern at video-level "
                    "files."
                )
            features = sorted(k for k in context if k not in _ID_KEYS + ("labels",))
            raise ReaderError(
                f"Feature(s) {', '.join(missing)} not found in {where}. The "
                f"records hold the features: {', '.join(features) or '(none)'}. "
                "Set --feature_names (and --feature_sizes) to those."
            )

        found = [len(context[k].float_list.value) for k in keys]
        wrong = [
            (n, e, f) for n, e, f in zip(keys, self.feature_sizes, found) if f != e
        ]
        if wrong:
            detail = "; ".join(
                f"feature '{n}' has {f} values, expected {e}" for n, e, f in wrong
            )
            raise ReaderError(
                f"In {where}: {detail}. Set --feature_sizes to match "
                f"--feature_names={','.join(self.feature_names)}, e.g. "
                f"--feature_sizes={','.join(map(str, found))}."
            )
        _check_first_labels(context, record_id, path, self.num_classes)
        self._keys = keys
        return id_key, 0

    def _parse(self, serialized, id_key, stored_shots):
        keys = self._record_keys()
        features = self._id_features(id_key)
        features["labels"] = tf.io.VarLenFeature(tf.int64)
        for key, size in zip(keys, self.feature_sizes):
            features[key] = tf.io.FixedLenFeature([size], tf.float32)
        parsed = tf.io.parse_example(serialized, features=features)
        video_ids = self._parse_ids(parsed, id_key)
        video = tf.concat([parsed[k] for k in keys], axis=1)
        # NaN or infinite features would turn the loss and then every weight
        # into NaN: reject the records by name instead.
        not_finite = tf.logical_not(tf.reduce_all(tf.math.is_finite(video), axis=1))
        check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(not_finite)),
            [
                f"{_NOT_FINITE_ERROR_TAG}: NaN or infinite feature values in "
                "record id(s)",
                tf.boolean_mask(video_ids, not_finite),
            ],
            summarize=10,
        )
        with tf.control_dependencies([check]):
            video = tf.ensure_shape(video, [None, self.feature_dim])
        return {
            "video_ids": video_ids,
            "video_matrix": video,
            "num_frames": tf.fill(tf.shape(video_ids), 1),
            "labels": self._labels_to_multi_hot(parsed["labels"], video_ids),
        }


def _import_kts():
    # Imported on demand: kts is needed only when shots are asked for.
    try:
        import kts  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise ReaderError(
            "Shots were asked for (num_shots > 0, --dcgn_shots) but kts.py "
            f"cannot be imported ({exc}); store shot_boundaries in the records "
            "with precompute_shots.py or set --dcgn_shots=0."
        ) from exc
    return kts


def _find_id_key(context, path):
    for key in _ID_KEYS:
        if key in context:
            return key
    raise ReaderError(
        f"The first record of {path} has no video id (neither 'id', the 2018 "
        f"key, nor 'video_id', the 2017 key); its context features are: "
        f"{', '.join(sorted(context)) or '(none)'}."
    )


def _record_id(context, id_key):
    values = context[id_key].bytes_list.value
    return values[0].decode("utf-8", "replace") if values else "?"


def _check_first_labels(context, record_id, path, num_classes):
    if "labels" not in context:
        return
    labels = list(context["labels"].int64_list.value)
    bad = [l for l in labels if l >= num_classes or l < 0]
    if bad:
        raise ReaderError(
            f"Record {record_id} in {path} has label(s) {bad} outside "
            f"[0, {num_classes}) (num_classes). Set --num_classes above the "
            "largest label (3862 for the 2018 data, 4716 for the 2017 data)."
        )


def get_reader(frame_features, **kwargs):
    """The frame-level reader when frame_features, else the video-level one."""
    cls = YT8MFrameFeatureReader if frame_features else YT8MAggregatedFeatureReader
    return cls(**kwargs)


# ---------------------------------------------------------------- errors ---


def _assert_detail(message, tag):
    """The readable part of a tf.debugging.Assert message after `tag`."""
    detail = message[message.index(tag) + len(tag) + 1 :].split("\n")[0]
    # Assert prints each data item in brackets: "[a] [b]" -> "a b".
    return " ".join(detail.replace("] [", " ").strip("[] ").split())


def explain_data_error(exc, data_pattern):
    """A ReaderError that says what a TF error during reading means.

    Call it on a tf.errors.OpError raised while iterating a reader's dataset:
    `raise readers.explain_data_error(e, FLAGS.train_data_pattern) from e`.
    For a DataLossError it reads the files (find_corrupt_files) to name the
    corrupt ones.
    """
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, tf.errors.DataLossError):
        try:
            bad = find_corrupt_files(data_pattern)
        except ReaderError:
            bad = []
        names = ", ".join(bad) if bad else "(none found on a re-read)"
        return ReaderError(
            f"Corrupt or truncated TFRecord file(s) in the data pattern "
            f"{data_pattern!r}: {names}. TensorFlow said: {message.strip()}. "
            "Download them again, remove them from the data pattern, or pass "
            "--skip_corrupt_files (skip_corrupt_files=True) to skip them."
        )
    if _LABEL_ERROR_TAG in message:
        return ReaderError(
            f"In the data pattern {data_pattern!r}: "
            f"{_assert_detail(message, _LABEL_ERROR_TAG)}"
        )
    if _NO_FRAMES_ERROR_TAG in message or _NOT_FINITE_ERROR_TAG in message:
        tag = (
            _NO_FRAMES_ERROR_TAG
            if _NO_FRAMES_ERROR_TAG in message
            else (_NOT_FINITE_ERROR_TAG)
        )
        return ReaderError(
            f"In the data pattern {data_pattern!r}: "
            f"{_assert_detail(message, tag)}. Remove these records from the "
            "data, or fix the program that wrote them."
        )
    if _FRAME_SIZE_ERROR_TAG in message:
        return ReaderError(
            f"In the data pattern {data_pattern!r}: "
            f"{_assert_detail(message, _FRAME_SIZE_ERROR_TAG)}. "
            "Set --feature_sizes to match the records."
        )
    if isinstance(exc, tf.errors.InvalidArgumentError) and (
        "Key:" in message or "Name:" in message
    ):
        return ReaderError(
            f"A record in the data pattern {data_pattern!r} does not fit "
            f"--feature_names/--feature_sizes: {message.strip()}"
        )
    return ReaderError(
        f"Reading the data pattern {data_pattern!r} failed: {message.strip()}"
    )


# ------------------------------------------------------------------ shots ---


def _int64_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def add_shot_boundaries_to_records(
    in_pattern,
    out_dir,
    num_shots,
    max_frames=300,
    feature_names=("rgb", "audio"),
    feature_sizes=(1024, 128),
    batch_size=32,
    overwrite=False,
):
    """Writes copies of frame-level shards with `shot_boundaries` stored.

    Each record is copied with the context feature `shot_boundaries` (int64
    [num_shots + 1], KTS over its first max_frames frames) added; everything
    else is unchanged, so reading with num_shots skips the KTS cost.

    Args:
      in_pattern: glob of frame-level TFRecord files.
      out_dir: directory for the copies, same base names.
      num_shots: shots per video (m); m + 1 boundaries stored.
      max_frames, feature_names, feature_sizes: as for the reader.
      batch_size: records segmented per kts call.
      overwrite: replace existing output files.
    Returns:
      list of the files written.
    """
    kts = _import_kts()
    if num_shots <= 0:
        raise ReaderError(f"num_shots must be > 0, got {num_shots}.")
    files = match_files(in_pattern)
    # Labels are copied as they are, not parsed: any range will do.
    reader = YT8MFrameFeatureReader(
        feature_names=feature_names,
        feature_sizes=feature_sizes,
        max_frames=max_frames,
        num_classes=2**31 - 1,
    )
    path, first = _first_record(files, skip_corrupt=False)
    id_key, _ = reader._inspect(path, first, 0)  # pylint: disable=protected-access
    parse = tf.function(
        lambda s: reader._parse(  # pylint: disable=protected-access
            s, id_key, stored_shots=0, with_labels=False
        )
    )
    tf.io.gfile.makedirs(out_dir)
    written = []
    for path in files:
        out_path = os.path.join(out_dir, os.path.basename(path))
        if os.path.abspath(out_path) == os.path.abspath(path):
            raise ReaderError(
                f"out_dir {out_dir} holds the input {path}; choose another directory."
            )
        if tf.io.gfile.exists(out_path) and not overwrite:
            raise ReaderError(f"{out_path} exists; pass overwrite=True to replace.")
        # Written under a temporary name: an interrupted run leaves no file
        # that looks complete.
        tmp_path = out_path + ".incomplete"
        with tf.io.TFRecordWriter(tmp_path) as writer:
            for records in tf.data.TFRecordDataset([path]).batch(batch_size):
                batch = parse(records)
                shots = np.asarray(
                    kts.batch_shot_boundaries(
                        batch["video_matrix"].numpy(),
                        batch["num_frames"].numpy(),
                        num_shots,
                    ),
                    np.int64,
                )
                for serialized, bounds in zip(records.numpy(), shots):
                    seq = tf.train.SequenceExample.FromString(serialized)
                    seq.context.feature[_SHOTS_KEY].CopyFrom(_int64_feature(bounds))
                    writer.write(seq.SerializeToString())
        tf.io.gfile.rename(tmp_path, out_path, overwrite=True)
        written.append(out_path)
    return written
