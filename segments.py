"""Video batches -> 5-frame segment batches (the 2019 segment-level task).

The segment-rated records (the 2019 validate and test shards) carry, in their
context, parallel lists `segment_labels` (class), `segment_start_times`
(frame index of a segment's first frame) and `segment_scores` (1: the class
is in that segment, 0: rated absent). Entries with the same start time are
one segment.

A segment batch has the keys of a video batch, one row per segment:

  video_ids      string  [S]  "<video id>:<start frame>"
  video_matrix   [S, segment_size, D], the frames [start, start + size),
                 zero past num_frames
  num_frames     int32   [S]  min(size, frames of the video - start)
  labels         float32 [S, C] the scores of the rated classes (rated only)
  label_weights  float32 [S, C] 1 for a rated (segment, class), else 0

`rated` makes one row per rated segment (evaluation); `every_segment` one
per `segment_size` frames of every video, the last one possibly shorter
(inference: a submission ranks all of them).
"""

import tensorflow as tf

import reader_errors

CONTEXT_FEATURES = {
    "segment_labels": tf.io.VarLenFeature(tf.int64),
    "segment_start_times": tf.io.VarLenFeature(tf.int64),
    "segment_scores": tf.io.VarLenFeature(tf.float32),
}


def _segment_batch(batch, video_index, start, segment_size):
    """The rows of the segments (video_index[s], start[s])."""
    num_frames = tf.gather(batch["num_frames"], video_index)
    offsets = start[:, None] + tf.range(segment_size)[None, :]
    real = offsets < num_frames[:, None]
    frames = tf.gather_nd(
        batch["video_matrix"],
        tf.stack(
            [
                tf.broadcast_to(video_index[:, None], tf.shape(offsets)),
                tf.where(real, offsets, 0),
            ],
            axis=2,
        ),
    )
    frames = frames * tf.cast(real, frames.dtype)[:, :, None]
    ids = tf.strings.join(
        [tf.gather(batch["video_ids"], video_index), tf.strings.as_string(start)],
        separator=":",
    )
    return {
        "video_ids": ids,
        "video_matrix": frames,
        "num_frames": tf.minimum(num_frames - start, segment_size),
    }


def every_segment(batch, segment_size):
    """One row per segment_size frames of every video of a video batch."""
    counts = -(-batch["num_frames"] // segment_size)
    video_index = tf.repeat(tf.range(tf.shape(counts)[0]), counts)
    first_row = tf.cumsum(counts, exclusive=True)
    start = (tf.range(tf.reduce_sum(counts)) - tf.gather(first_row, video_index)) * (
        segment_size
    )
    return _segment_batch(batch, video_index, start, segment_size)


def rated(batch, context, num_classes, segment_size):
    """One row per rated segment of a video batch, with its labels and weights.

    Args:
      batch: the video batch (video_ids, video_matrix, num_frames).
      context: the parsed context, holding CONTEXT_FEATURES' sparse tensors.
      num_classes: C.
      segment_size: frames per segment.
    """
    ids = batch["video_ids"]
    labels = context["segment_labels"]
    starts = context["segment_start_times"]
    scores = context["segment_scores"]
    row = starts.indices[:, 0]
    start = tf.cast(starts.values, tf.int32)
    label = labels.values
    num_frames = tf.gather(batch["num_frames"], row)
    counts = [tf.size(starts.values), tf.size(labels.values), tf.size(scores.values)]
    uneven = tf.logical_not(
        tf.logical_and(tf.equal(counts[0], counts[1]), tf.equal(counts[0], counts[2]))
    )
    past_end = tf.logical_or(start >= num_frames, start < 0)
    bad_label = tf.logical_or(label < 0, label >= num_classes)
    checks = [
        reader_errors.check(
            tf.logical_not(uneven),
            "segment_lists",
            [
                "segment_labels, segment_start_times and segment_scores differ in "
                "length in the batch of record id(s)",
                ids,
            ],
        ),
        reader_errors.check(
            tf.logical_not(tf.reduce_any(past_end)),
            "segment_start",
            [
                "a rated segment starts past the last frame in record id(s)",
                tf.gather(ids, tf.boolean_mask(row, past_end)),
                "at start time(s)",
                tf.boolean_mask(start, past_end),
                "of frame count(s)",
                tf.boolean_mask(num_frames, past_end),
            ],
        ),
        reader_errors.check(
            tf.logical_not(tf.reduce_any(bad_label)),
            "label_out_of_range",
            [
                f"segment label outside [0, {num_classes}) (num_classes) in record "
                "id(s)",
                tf.gather(ids, tf.boolean_mask(row, bad_label)),
                "with label(s)",
                tf.boolean_mask(label, bad_label),
            ],
        ),
    ]
    with tf.control_dependencies(checks):
        # Segments are (video, start) pairs, in video then start order.
        key = tf.cast(row, tf.int64) * (2**31) + tf.cast(start, tf.int64)
    order = tf.argsort(key, stable=True)
    unique_keys, segment = tf.unique(tf.gather(key, order))
    video_index = tf.cast(unique_keys // (2**31), tf.int32)
    segment_start = tf.cast(unique_keys % (2**31), tf.int32)
    out = _segment_batch(batch, video_index, segment_start, segment_size)
    pairs = tf.stack([tf.cast(segment, tf.int64), tf.gather(label, order)], axis=1)
    shape = tf.stack(
        [tf.size(unique_keys, tf.int64), tf.constant(num_classes, tf.int64)]
    )
    # A class rated twice in one segment: the highest score, weight 1.
    out["labels"] = tf.tensor_scatter_nd_max(
        tf.zeros(shape, tf.float32), pairs, tf.gather(scores.values, order)
    )
    out["label_weights"] = tf.tensor_scatter_nd_max(
        tf.zeros(shape, tf.float32), pairs, tf.ones_like(scores.values)
    )
    out["labels"].set_shape([None, num_classes])
    out["label_weights"].set_shape([None, num_classes])
    return out
