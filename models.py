"""The model protocol every YouTube-8M classifier follows.

A model is a Keras model built from a configs.ModelConfig whose call takes
the batch dict of readers.py and returns {"predictions": float32 [B,
num_classes]} probabilities. Subclasses implement `classify`; this base
class does what all of them share: dequantising uint8 frames inside the
compiled step, zeroing frames past num_frames, the per-frame L2
normalisation of the input, and creating every weight from a zero batch
(so that checkpoints restore into real variables).

A model is saved as a training checkpoint (common.make_checkpoint) beside
its model_config.json, and exported as a SavedModel for serving; there is
no other format.
"""

import tensorflow as tf
import keras

import configs
import quantization


def dummy_batch(config, batch_size=1):
    """A zero batch with the reader's keys, dtypes and static shapes."""
    if config.frame_features:
        video_matrix = tf.zeros([batch_size, config.max_frames, config.feature_dim])
    else:
        video_matrix = tf.zeros([batch_size, config.feature_dim])
    batch = {
        "video_ids": tf.fill([batch_size], ""),
        "video_matrix": video_matrix,
        "num_frames": tf.ones([batch_size], tf.int32),
    }
    if config.dcgn_shots:
        # Shot 0 holds the one frame, the others are empty.
        batch["shot_boundaries"] = tf.concat(
            [
                tf.zeros([batch_size, 1], tf.int32),
                tf.ones([batch_size, config.dcgn_shots], tf.int32),
            ],
            axis=1,
        )
    return batch


class BaseModel(keras.Model):
    """Batch dict in, {"predictions": float32 [B, num_classes]} out."""

    def __init__(self, config: configs.ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.num_classes = config.num_classes

    def classify(self, features, batch, training=None):
        """Probabilities [B, num_classes] from normalised float32 features.

        Args:
          features: [B, T, D] frames (zero past num_frames) or [B, D] video-level.
          batch: the whole batch dict, for num_frames and shot_boundaries.
          training: Keras training flag.
        """
        raise NotImplementedError

    def call(self, batch, training=None):
        features = batch["video_matrix"]
        if features.dtype == tf.uint8:
            features = quantization.dequantize(features)
        if self.config.frame_features:
            # Whatever lies past num_frames (zero bytes dequantise to -2) must not
            # reach any model, so every model sees zeros there.
            valid = tf.sequence_mask(batch["num_frames"], tf.shape(features)[1])
            features *= tf.cast(valid, features.dtype)[:, :, None]
        if self.config.l2_normalize_input:
            # The starter's habit; zero (padded) frames stay zero.
            features = tf.math.l2_normalize(features, axis=-1)
        # Under --mixed_precision the body computes in bfloat16.
        features = tf.cast(features, self.compute_dtype)
        predictions = self.classify(features, batch, training=training)
        return {"predictions": tf.cast(predictions, tf.float32)}

    def build_weights(self):
        """Creates every weight by calling the model on a zero batch."""
        self(dummy_batch(self.config))
        return self
