"""What the model-level tests share: tiny typed configs and fake batches."""

import dataclasses

import numpy as np
import tensorflow as tf

import common
import configs

NUM_CLASSES = 6
FEATURE_DIM = 8
MAX_FRAMES = 12

# Bodies small enough for a test, per model family.
TINY_BODIES = {
    configs.DbofConfig: configs.DbofConfig(
        dbof_cluster_size=16, dbof_hidden_size=8, iterations=5
    ),
    configs.RecurrentConfig: configs.RecurrentConfig(lstm_cells=8, lstm_layers=2),
    configs.DCGNConfig: configs.DCGNConfig(dcgn_levels=3, dcgn_filters=8),
}


def tiny_config(model, body=None, max_frames=MAX_FRAMES, **fields):
    """A ModelConfig of `model` at test size; `body` and `fields` override."""
    family = configs.model_family(model)
    if body is None and family.body is not None:
        body = TINY_BODIES[family.body]
    return configs.ModelConfig(
        model=model,
        frame_features=family.frame_level,
        feature_names=("rgb", "audio"),
        feature_sizes=(FEATURE_DIM - 2, 2),
        max_frames=max_frames,
        num_classes=NUM_CLASSES,
        body=body,
        **fields,
    )


def tiny_model(model, body=None, **fields):
    return common.build_model(tiny_config(model, body, **fields))


def with_body(config, **changes):
    return dataclasses.replace(config, body=dataclasses.replace(config.body, **changes))


def make_batch(frame_level, batch_size=4, seed=0, max_frames=MAX_FRAMES):
    """Random frames (zero past num_frames), one label per video."""
    rng = np.random.default_rng(seed)
    num_frames = rng.integers(1, max_frames + 1, size=batch_size)
    num_frames[0] = 1
    num_frames[-1] = max_frames
    if frame_level:
        matrix = rng.normal(size=(batch_size, max_frames, FEATURE_DIM))
        matrix *= np.arange(max_frames)[None, :, None] < num_frames[:, None, None]
    else:
        matrix = rng.normal(size=(batch_size, FEATURE_DIM))
        num_frames[:] = 1
    labels = np.zeros((batch_size, NUM_CLASSES), np.float32)
    labels[np.arange(batch_size), rng.integers(0, NUM_CLASSES, batch_size)] = 1
    return {
        "video_ids": tf.constant([f"v{i}" for i in range(batch_size)]),
        "video_matrix": tf.constant(matrix, tf.float32),
        "num_frames": tf.constant(num_frames, tf.int32),
        "labels": tf.constant(labels),
    }
