"""The shot stage of the input pipeline: KTS shot boundaries for DCGN.

A model whose config asks for shots (--dcgn_shots > 0) reads, beside the
reader's batch,

  shot_boundaries int32 [B, dcgn_shots + 1], s_0 = 0 <= ... <= s_m = num_frames

(the layout of kts.py). common.make_dataset adds them after the reader: read
from the records when precompute_shots.py stored them there, otherwise
computed by kts.batch_shot_boundaries in parallel tf.data calls. The reader
itself knows nothing of shots; it only carries the stored context feature
through when the schema asks it to (RecordSchema.carried).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf
import threadpoolctl

import kts
import quantization
from record_schema import parse_first_record
from tfrecord_files import ReaderError

SHOTS_KEY = "shot_boundaries"
# The eq. (8) penalty the stored shots were computed with (absent: 0).
SHOTS_PENALTY_KEY = "shot_kts_penalty"


def schema_with_stored_shots(schema, path, serialized, dcgn_shots, dcgn_kts_penalty):
    """`schema`, carrying the stored boundaries when the first record has them.

    Raises:
      ReaderError: the record stores shots of another count or penalty than
        the model's, which would differ from what the model computes.
    """
    record = parse_first_record(path, serialized)
    context, where = record.context, record.where
    if SHOTS_KEY not in context:
        return schema
    stored = len(context[SHOTS_KEY].int64_list.value) - 1
    if stored != dcgn_shots:
        raise ReaderError(
            f"{where} stores {SHOTS_KEY} for {stored} shots, but {dcgn_shots} "
            f"shots were asked for (--dcgn_shots). Use --dcgn_shots={stored}, or "
            "read files without stored shots so that they are computed."
        )
    penalty = context[SHOTS_PENALTY_KEY].float_list.value
    stored_penalty = float(penalty[0]) if penalty else 0.0
    if not math.isclose(stored_penalty, dcgn_kts_penalty, rel_tol=1e-6):
        raise ReaderError(
            f"{where} stores {SHOTS_KEY} computed with KTS penalty "
            f"{stored_penalty:g}, but the model's is {dcgn_kts_penalty:g} "
            "(--dcgn_kts_penalty). Copy the records again with precompute_shots.py "
            f"--dcgn_kts_penalty={dcgn_kts_penalty:g}, or read files without "
            "stored shots so that they are computed."
        )
    return dataclasses.replace(schema, carried=((SHOTS_KEY, dcgn_shots + 1),))


def add_shot_boundaries(
    batches, dcgn_shots, dcgn_kts_penalty, max_frames, deterministic=True
):
    """Reader batches -> the same batches with `shot_boundaries`.

    Stored boundaries (carried by the reader) are cut to the frames kept: a
    max_frames below the record's length cuts the video, so s_m = num_frames
    still holds. Otherwise KTS computes them; a video shorter than
    max_frames gets proportionally fewer shots (kts.shots_for_length).
    """
    if SHOTS_KEY in batches.element_spec:
        add = _cut_to_frames
    else:
        # KTS spends much of its time in numpy's BLAS (the Gram product),
        # whose own threads would fight tf.data's parallel calls for the
        # cores (docs/benchmarks.md, "KTS in the input pipeline"). One BLAS thread,
        # process-wide; the parallel calls spread the batches over the cores.
        threadpoolctl.threadpool_limits(1, user_api="blas")

        def add(batch):
            return {
                **batch,
                SHOTS_KEY: _computed(batch, dcgn_shots, dcgn_kts_penalty, max_frames),
            }

    batches = batches.map(
        add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic
    )
    return batches.prefetch(tf.data.AUTOTUNE)


def _cut_to_frames(batch):
    stored = tf.cast(batch[SHOTS_KEY], tf.int32)
    num_frames = batch["num_frames"][:, None]
    bounds = tf.concat([tf.minimum(stored[:, :-1], num_frames), num_frames], axis=1)
    return {**batch, SHOTS_KEY: tf.ensure_shape(bounds, stored.shape)}


def _computed(batch, dcgn_shots, dcgn_kts_penalty, max_frames):
    def boundaries(video_matrix, num_frames):
        frames = video_matrix.numpy()
        if frames.dtype != np.float32:
            frames = quantization.dequantize(frames)
        return np.asarray(
            kts.batch_shot_boundaries(
                frames,
                num_frames.numpy(),
                dcgn_shots,
                dcgn_kts_penalty,
                full_length=max_frames,
            ),
            np.int32,
        )

    bounds = tf.py_function(
        boundaries, [batch["video_matrix"], batch["num_frames"]], tf.int32
    )
    bounds.set_shape([None, dcgn_shots + 1])
    return bounds
