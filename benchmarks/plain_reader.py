"""The reader benchmark's baseline: a plain per-record tf.data pipeline.

What one writes for YouTube-8M frame records from the tf.data guide, record
by record: parse_single_sequence_example, decode_raw, dequantise, pad to
max_frames, batch, prefetch, with parallel map calls. It does no checking of
the records; readers.YT8MFrameFeatureReader does, and must still be faster.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # pylint: disable=wrong-import-position

import quantization  # pylint: disable=wrong-import-position


def plain_frame_dataset(
    files,
    batch_size,
    num_classes,
    max_frames=300,
    feature_names=("rgb", "audio"),
    feature_sizes=(1024, 128),
    dequantize=True,
    training=False,
    shuffle_buffer=256,
    seed=None,
):
    """Batches like the frame reader's: video_ids, video_matrix, num_frames, labels.

    training=True interleaves the files and shuffles records, as a training
    pipeline would; otherwise records come in file order.
    """

    def parse(serialized):
        context, sequences = tf.io.parse_single_sequence_example(
            serialized,
            context_features={
                "id": tf.io.FixedLenFeature([], tf.string),
                "labels": tf.io.VarLenFeature(tf.int64),
            },
            sequence_features={
                name: tf.io.FixedLenSequenceFeature([], tf.string)
                for name in feature_names
            },
        )
        parts = [
            tf.reshape(tf.io.decode_raw(sequences[name], tf.uint8), [-1, size])
            for name, size in zip(feature_names, feature_sizes)
        ]
        video = tf.concat(parts, axis=1)[:max_frames]
        num_frames = tf.shape(video)[0]
        if dequantize:
            video = quantization.dequantize(video)
        video = tf.pad(video, [[0, max_frames - num_frames], [0, 0]])
        labels = tf.scatter_nd(
            tf.cast(context["labels"].values[:, None], tf.int32),
            tf.ones_like(context["labels"].values, tf.float32),
            [num_classes],
        )
        return {
            "video_ids": context["id"],
            "video_matrix": video,
            "num_frames": num_frames,
            "labels": tf.minimum(labels, 1.0),
        }

    if training:
        records = (
            tf.data.Dataset.from_tensor_slices(files)
            .shuffle(len(files), seed=seed)
            .interleave(
                tf.data.TFRecordDataset,
                cycle_length=len(files),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=False,
            )
            .shuffle(shuffle_buffer, seed=seed)
        )
    else:
        records = tf.data.TFRecordDataset(files)
    return (
        records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=training)
        .prefetch(tf.data.AUTOTUNE)
    )
