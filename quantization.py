"""YouTube-8M's 8-bit feature quantisation, written once for every caller.

The starter's dequantisation: x = q * 4/255 + 4/512 - 2 for q in 0..255,
a grid over [-2, 2] with step 4/255.

Its offset, 4/512, is about half a step: the dequantiser returns the middle
of the interval [-2 + q * 4/255, -2 + (q + 1) * 4/255), so the features were
encoded by truncation, as MediaPipe's YouTube-8M extraction and VGGish's
postprocessor still do (`encode`). The starter's own feature_extractor
rounded instead, which reads back half a step (0.0078) too high on average.
"""

import numpy as np

SCALE = 4.0 / 255.0
OFFSET = 4.0 / 512.0 - 2.0


def dequantize(quantized):
    """uint8 (or any numeric) values -> float32 on the starter's grid.

    Takes a numpy array or a TensorFlow tensor and returns the same kind.
    """
    if isinstance(quantized, np.ndarray):
        return quantized.astype(np.float32) * np.float32(SCALE) + np.float32(OFFSET)
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.cast(quantized, tf.float32) * SCALE + OFFSET


def quantize(values):
    """float values -> the nearest uint8 grid point (numpy), clipped to [-2, 2]."""
    q = np.rint((np.asarray(values, np.float32) - OFFSET) / SCALE)
    return np.clip(q, 0, 255).astype(np.uint8)


def encode(values):
    """float features -> the bytes of a record, as the dataset was encoded.

    Clipped to [-2, 2], then floor((x + 2) * 255 / 4): the truncation that the
    dequantiser's half-step offset undoes (see the module docstring).
    """
    clipped = np.clip(np.asarray(values, np.float32), -2.0, 2.0)
    return np.floor((clipped + 2.0) * np.float32(255.0 / 4.0)).astype(np.uint8)
