"""YouTube-8M TFRecords -> tf.data batches, frame level and video level.

A batch is a dict (docs/design.md, "The batch"):

  video_ids       string  [B]
  video_matrix    float32 [B, max_frames, D] (frame level) or [B, D] (video
                  level); D = sum(feature_sizes), the features concatenated in
                  feature_names order. Frames past num_frames are exactly 0.
                  uint8 when the reader is built with dequantize=False.
  num_frames      int32   [B] (1 for video level)
  labels          float32 [B, num_classes] multi-hot (all zero when the
                  records carry no `labels`, as in test shards)

Stages after the reader add what a model needs beyond these (shots.py).

Every dimension except the batch one is static, so Keras models build from
the dataset's element_spec.

A reader keeps no state between calls. `inspect` reads the first record and
returns a `RecordSchema` (which id key the files use, the video-level record
keys, context features to carry through); `parse` takes serialized records and a
schema. `dataset` does both; the exported model parses with the schema it
was exported with.

Records are batched as serialized strings first and parsed a whole batch at a
time (parse_sequence_example / parse_example, then decode_raw on the [B, T]
frame bytes): one op call per batch instead of one per record.

Problems with the data surface as `ReaderError` (a cli.UsageError), raised
while the dataset is built wherever the first record can tell (no file,
wrong kind of records, missing feature, wrong feature size). What only the
full read can find fails during iteration with a check of reader_errors,
whose `explain_data_error` names the record or the file. Records that would
train on nothing are refused by name, never dropped or passed on silently:
a video-level record with a NaN or infinite feature value, and a frame-level
video without frames (num_frames 0, also when one feature's list is missing).
"""

from absl import logging
import numpy as np
import tensorflow as tf

import configs
import quantization
import reader_errors
import record_schema
import segments
import tfrecord_files
from record_schema import FRAME_FEATURE_FLAG
from tfrecord_files import ReaderError


# quantization.dequantize of every uint8 code. Looking the codes up gives its
# float32 values bit for bit; XLA would contract q * SCALE + OFFSET into one
# FMA, which rounds differently.
_DEQUANTIZED_CODES = quantization.dequantize(np.arange(256, dtype=np.uint8))


def _side_by_side(parts):
    """The features' frames [B, T, D_i] concatenated into [B, T, sum D_i]."""
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=2)


@tf.function(jit_compile=True)
def assemble_frames(parts, num_frames):
    """Dequantised frames, the features side by side, zero past num_frames.

    parts: uint8 [B, T, D_i] per feature; num_frames: int32 [B].
    Returns float32 [B, T, sum D_i]. Compiled so that concatenating,
    dequantising and masking write the batch once instead of three times:
    that write is most of the reader's work on float32 batches.
    """
    codes = tf.cast(_side_by_side(parts), tf.int32)
    mask = tf.sequence_mask(num_frames, tf.shape(codes)[1])
    return tf.where(mask[:, :, None], tf.gather(_DEQUANTIZED_CODES, codes), 0.0)


# ----------------------------------------------------------------- files ---


class RecordFiles:
    """The TFRecord files of a data pattern, read as every program reads them.

    compression_type: "", "GZIP" or "ZLIB" (--compression_type).
    skip_corrupt_files: skip files whose framing is broken, and the rest of a
      file after a corrupt record, with a warning (--skip_corrupt_files);
      otherwise such a file is refused by name.
    """

    def __init__(self, compression_type="", skip_corrupt_files=False):
        if compression_type not in tfrecord_files.COMPRESSION_TYPES:
            raise ReaderError(
                f"--compression_type={compression_type!r}: give one of "
                f"{', '.join(repr(c) for c in tfrecord_files.COMPRESSION_TYPES)}."
            )
        self.compression_type = compression_type
        self.skip_corrupt_files = bool(skip_corrupt_files)

    def match(self, data_pattern, flag=None):
        """The sorted files of data_pattern, without the corrupt ones when
        skipping them. Raises ReaderError (naming `flag`) when none is left."""
        files = tfrecord_files.match_files(data_pattern, flag)
        # Before the corruption walk, which would take gzip for corruption.
        tfrecord_files.check_compression(files, self.compression_type)
        if self.skip_corrupt_files and not self.compression_type:
            files = self._drop_corrupt(files)
        return files

    def count(self, files):
        """Records in `files` when counting reads no payload (plain local
        files), else None."""
        if self.compression_type or any("://" in path for path in files):
            return None
        return tfrecord_files.count_records(files)

    def records(self, path):
        """The serialized records of one file (a string tensor or str)."""
        ds = tf.data.TFRecordDataset(
            path, compression_type=self.compression_type, buffer_size=1 << 20
        )
        if self.skip_corrupt_files:
            # A payload corrupted inside a well-framed file: keep the records
            # before it, drop the rest of that file (TF logs each case).
            ds = ds.ignore_errors(log_warning=True)
        return ds

    def in_order(self, files):
        """Every record of `files` (a list or a dataset of names), in order."""
        if not isinstance(files, tf.data.Dataset):
            files = tf.data.Dataset.from_tensor_slices(files)
        # Read ahead on a thread of its own: read in line with the parsing,
        # each record's read held up every parse waiting for input.
        return files.flat_map(self.records).prefetch(tf.data.AUTOTUNE)

    def first_record(self, files):
        """(path, serialized) of the first record in the sorted files."""
        for path in files:
            try:
                first = tf.data.TFRecordDataset([path], self.compression_type)
                for record in first.take(1):
                    return path, record.numpy()
            except tf.errors.DataLossError as exc:
                if self.skip_corrupt_files:
                    continue
                raise reader_errors.corrupt_file_error(path, exc) from exc
        raise ReaderError(
            f"The {len(files)} file(s) matching the data pattern hold no records "
            f"(first: {files[0]}). Check {tfrecord_files.PATTERN_HINT}."
        )

    def _drop_corrupt(self, files):
        kept, skipped = [], []
        for path in files:
            reason = tfrecord_files.check_tfrecord_framing(path)
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


# ---------------------------------------------------------------- readers ---


class _BaseReader:
    """What both readers share: file handling, the tf.data plumbing, checks."""

    frame_level = None  # set by subclasses

    def __init__(
        self,
        num_classes=configs.NUM_CLASSES,
        feature_names=configs.FRAME_FEATURE_NAMES,
        feature_sizes=configs.FEATURE_SIZES,
        max_frames=configs.MAX_FRAMES,
        skip_corrupt_files=False,
        dequantize=True,
        compression_type="",
        segment_mode=None,
        segment_size=configs.SEGMENT_SIZE,
    ):
        feature_names, feature_sizes = configs.features(feature_names, feature_sizes)
        self.num_classes = int(num_classes)
        self.feature_names = feature_names
        self.feature_sizes = feature_sizes
        self.feature_dim = sum(feature_sizes)
        self.max_frames = int(max_frames)
        self.dequantize = bool(dequantize)
        self.files = RecordFiles(compression_type, skip_corrupt_files)
        if segment_mode not in (None, "rated", "every"):
            raise ValueError(
                f"segment_mode: None, 'rated' or 'every', not {segment_mode!r}"
            )
        if segment_mode and not self.frame_level:
            raise ReaderError(
                "--segment_labels reads frame-level records: the model must be a "
                f"frame-level one ({FRAME_FEATURE_FLAG})."
            )
        if segment_size < 1:
            raise ReaderError(f"--segment_size={segment_size}: give at least 1.")
        self.segment_mode = segment_mode
        self.segment_size = int(segment_size)

    # -- to be provided by subclasses
    def _inspect_record(self, path, serialized):
        """The RecordSchema of one serialized record, or a ReaderError."""
        raise NotImplementedError

    def parse(self, serialized, schema):
        """Parses a batch of serialized records with pure TF ops.

        Args:
          serialized: string tensor [N] of serialized records.
          schema: a RecordSchema (from inspect, or RecordSchema() for any).
        Returns:
          the batch dict (module docstring), with the schema's carried
          context features.
        """
        raise NotImplementedError

    def inspect(self, data_pattern):
        """(files, RecordSchema) of a data pattern, from its first record.

        Raises:
          ReaderError: no file matches, or the first record does not fit the
            reader's settings (the message says which flag to change).
        """
        files = self.files.match(data_pattern)
        return files, self._inspect_record(*self.files.first_record(files))

    # -- shared parsing pieces
    def _parse_ids(self, context, id_key):
        if id_key is not None:
            return context[id_key]
        # Schema unknown (e.g. a serving signature): take whichever key is set.
        return tf.where(
            tf.strings.length(context["id"]) > 0, context["id"], context["video_id"]
        )

    def _labels_to_multi_hot(self, labels, video_ids):
        """SparseTensor [B, L] int64 -> float32 [B, num_classes], checked."""
        values = labels.values
        rows = labels.indices[:, 0]
        bad = tf.logical_or(values >= self.num_classes, values < 0)
        check = reader_errors.check(
            tf.logical_not(tf.reduce_any(bad)),
            "label_out_of_range",
            [
                f"label outside [0, {self.num_classes}) (num_classes) in record id(s)",
                tf.gather(video_ids, tf.boolean_mask(rows, bad)),
                "with label(s)",
                tf.boolean_mask(values, bad),
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
        shuffle_buffer=1024,
        seed=None,
        input_context=None,
        inspected=None,
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
          shuffle_buffer: records in the shuffle buffer when training (a
            frame-level record is ~350 KB).
          seed: seed for file and record shuffling.
          input_context: tf.distribute.InputContext or None. Shards by file when
            there are at least num_input_pipelines files, else by record.
          inspected: what inspect(data_pattern) returned, when the caller has
            it already (the files are then not matched, walked for corruption
            or inspected again).
        Raises:
          ReaderError: the files do not fit the reader's settings.
        """
        files, schema = inspected or self.inspect(data_pattern)

        if input_context is not None:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
        per_file = self.files.records

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
            records = self.files.in_order(file_ds)
        if split_records:
            records = records.shard(num_pipelines, input_context.input_pipeline_id)
        if training:
            # Repeating after the shuffle keeps epochs whole: each record once
            # per epoch, files and records reshuffled every epoch.
            records = records.shuffle(shuffle_buffer, seed=seed).repeat(num_epochs)
        batches = records.batch(batch_size, drop_remainder=training)
        batches = batches.map(
            lambda serialized: self.parse(serialized, schema),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=not training,
        )
        if self.segment_mode:
            # A batch of videos holds any number of segments: batch them anew.
            batches = batches.unbatch().batch(batch_size, drop_remainder=training)
        return batches.prefetch(tf.data.AUTOTUNE)


class YT8MFrameFeatureReader(_BaseReader):
    """Frame-level tf.train.SequenceExample records.

    Context: `id` (2018) or `video_id` (2017) bytes, `labels` int64 list
    (absent in test shards).
    Feature lists: one per feature name, one bytes value of feature_size uint8
    values per frame.

    Batch: video_matrix float32 [B, max_frames, D] (uint8 when constructed with
    dequantize=False, for a model that dequantises in its compiled step:
    models.py, --dequantize_in_model),
    num_frames int32 [B] = min(frames, max_frames), frames past it exactly 0.
    """

    frame_level = True

    def _inspect_record(self, path, serialized):
        schema = record_schema.frame_schema(
            path, serialized, self.feature_names, self.feature_sizes, self.num_classes
        )
        if self.segment_mode == "rated":
            context = tf.train.SequenceExample.FromString(serialized).context.feature
            if "segment_start_times" not in context:
                raise ReaderError(
                    f"The first record of {path} has no segment ratings "
                    "(segment_labels, segment_start_times, segment_scores), which "
                    "--segment_labels evaluates on: use the segment-rated "
                    "validation records (the 2019 validate*.tfrecord files)."
                )
        return schema

    def parse(self, serialized, schema, with_labels=True):
        """See _BaseReader.parse; with_labels=False leaves `labels` out."""
        context_features = record_schema.id_features(schema.id_key)
        if with_labels:
            context_features["labels"] = tf.io.VarLenFeature(tf.int64)
        for key, length in schema.carried:
            context_features[key] = tf.io.FixedLenFeature([length], tf.int64)
        if self.segment_mode == "rated":
            context_features.update(segments.CONTEXT_FEATURES)
        sequence_features = {
            name: tf.io.FixedLenSequenceFeature([], tf.string)
            for name in self.feature_names
        }
        context, sequences, lengths = tf.io.parse_sequence_example(
            serialized,
            context_features=context_features,
            sequence_features=sequence_features,
        )

        video_ids = self._parse_ids(context, schema.id_key)
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
                reader_errors.check(
                    tf.logical_not(tf.reduce_any(wrong)),
                    "frame_feature_size",
                    [
                        f"feature {name} expects {size} bytes per frame "
                        "(--feature_sizes) but found",
                        tf.unique(tf.boolean_mask(lens, wrong)).y,
                        "in record id(s)",
                        tf.boolean_mask(video_ids, tf.reduce_any(wrong, axis=1)),
                    ],
                )
            )
            # Padded as strings ("" decodes to zeros): every batch then has the
            # static shape [B, max_frames, size], one compilation of
            # assemble_frames serves them all, and no pass over the frames
            # pads them.
            frames = tf.pad(frames, [[0, 0], [0, max_frames - tf.shape(frames)[1]]])
            parts.append(tf.io.decode_raw(frames, tf.uint8, fixed_length=size))
            n = tf.cast(tf.minimum(lengths[name], max_frames), tf.int32)
            num_frames = n if num_frames is None else tf.minimum(num_frames, n)

        # Features of one video cover the same frames; unequal lists mean a
        # broken record (the starter silently cut it to the shorter one).
        first = self.feature_names[0]
        unequal = tf.zeros_like(video_ids, tf.bool)
        for name in self.feature_names[1:]:
            unequal |= tf.not_equal(lengths[name], lengths[first])
        checks.append(
            reader_errors.check(
                tf.logical_not(tf.reduce_any(unequal)),
                "feature_lengths",
                [
                    f"frame counts differ between the features "
                    f"{', '.join(self.feature_names)} in record id(s)",
                    tf.boolean_mask(video_ids, unequal),
                    "with frame counts",
                    tf.strings.reduce_join(
                        tf.strings.as_string(
                            tf.boolean_mask(
                                tf.stack([lengths[n] for n in self.feature_names], 1),
                                unequal,
                            )
                        ),
                        axis=1,
                        separator="/",
                    ),
                ],
            )
        )
        # A video without frames (or without any frame of one feature) has
        # nothing to learn from or predict with: reject it by name rather
        # than train on padding.
        empty = tf.equal(num_frames, 0)
        checks.append(
            reader_errors.check(
                tf.logical_not(tf.reduce_any(empty)),
                "no_frames",
                [
                    "no frames (of at least one of the features "
                    f"{', '.join(self.feature_names)}) in record id(s)",
                    tf.boolean_mask(video_ids, empty),
                ],
            )
        )
        parts = [tf.ensure_shape(p, [None, max_frames, None]) for p in parts]
        with tf.control_dependencies(checks):
            if self.dequantize:
                video = assemble_frames(parts, num_frames)
            else:
                # Frames past num_frames decoded from "" and are zero already.
                video = _side_by_side(parts)
        video = tf.ensure_shape(video, [None, max_frames, self.feature_dim])

        batch = {
            "video_ids": video_ids,
            "video_matrix": video,
            "num_frames": num_frames,
        }
        if self.segment_mode == "rated":
            return segments.rated(batch, context, self.num_classes, self.segment_size)
        if self.segment_mode == "every":
            return segments.every_segment(batch, self.segment_size)
        if with_labels:
            batch["labels"] = self._labels_to_multi_hot(context["labels"], video_ids)
        batch.update({key: context[key] for key, _ in schema.carried})
        return batch


class YT8MAggregatedFeatureReader(_BaseReader):
    """Video-level tf.train.Example records (mean_rgb float[1024], ...).

    A feature name is looked up as given and then with a `mean_` prefix, so
    both feature_names=("mean_rgb", "mean_audio") (the starter's spelling) and
    the frame-level default ("rgb", "audio") read these records.
    Batch: video_matrix float32 [B, D], num_frames int32 [B] all 1.
    max_frames is ignored.
    """

    frame_level = False

    def _inspect_record(self, path, serialized):
        return record_schema.video_schema(
            path, serialized, self.feature_names, self.feature_sizes, self.num_classes
        )

    def parse(self, serialized, schema):
        keys = schema.feature_keys or record_schema.video_feature_keys(
            self.feature_names
        )
        features = record_schema.id_features(schema.id_key)
        features["labels"] = tf.io.VarLenFeature(tf.int64)
        for key, size in zip(keys, self.feature_sizes):
            features[key] = tf.io.FixedLenFeature([size], tf.float32)
        parsed = tf.io.parse_example(serialized, features=features)
        video_ids = self._parse_ids(parsed, schema.id_key)
        video = tf.concat([parsed[k] for k in keys], axis=1)
        # NaN or infinite features would turn the loss and then every weight
        # into NaN: reject the records by name instead.
        not_finite = tf.logical_not(tf.reduce_all(tf.math.is_finite(video), axis=1))
        check = reader_errors.check(
            tf.logical_not(tf.reduce_any(not_finite)),
            "not_finite",
            [
                "NaN or infinite feature values in record id(s)",
                tf.boolean_mask(video_ids, not_finite),
            ],
        )
        with tf.control_dependencies([check]):
            video = tf.ensure_shape(video, [None, self.feature_dim])
        return {
            "video_ids": video_ids,
            "video_matrix": video,
            "num_frames": tf.fill(tf.shape(video_ids), 1),
            "labels": self._labels_to_multi_hot(parsed["labels"], video_ids),
        }


def get_reader(frame_features, **kwargs):
    """The frame-level reader when frame_features, else the video-level one."""
    cls = YT8MFrameFeatureReader if frame_features else YT8MAggregatedFeatureReader
    return cls(**kwargs)
