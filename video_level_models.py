"""Video-level models: classifiers over one feature vector per video.

The classifiers are plain Keras layers; each is the head that ends every
frame-level model (`--video_level_classifier_model`), and wrapped in a model
of the same name it reads video-level records (`mean_rgb`, `mean_audio`).
"""

import keras
import tensorflow as tf

import configs
import models


def l2_penalty_like_the_starter(l2_penalty):
    """slim's l2_regularizer(l) is l * sum(w^2) / 2; Keras' L2(l) is
    l * sum(w^2): halving l gives the starter's penalty."""
    return keras.regularizers.L2(l2_penalty / 2.0)


class LogisticClassifier(keras.layers.Layer):
    """One sigmoid per class: p = sigmoid(x W + b).

    call(features [B, D]) -> predictions [B, num_classes].
    """

    def __init__(self, num_classes, l2_penalty, **kwargs):
        super().__init__(**kwargs)
        self.logits = keras.layers.Dense(
            num_classes,
            kernel_regularizer=l2_penalty_like_the_starter(l2_penalty),
            dtype=self.dtype_policy,
            name="logits",
        )

    def call(self, features):
        return tf.sigmoid(self.logits(features))


class MoeClassifier(keras.layers.Layer):
    """The starter's mixture of experts, one mixture per class.

    p_c = sum_m softmax(gates_c)_m * sigmoid(experts_c)_m over M experts and a
    dummy expert (gate M + 1) that always predicts 0, so the gates can also
    say "none of the experts".

    call(features [B, D]) -> predictions [B, num_classes].
    """

    def __init__(self, num_classes, moe_num_mixtures, l2_penalty, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.moe_num_mixtures = moe_num_mixtures
        regularizer = l2_penalty_like_the_starter(l2_penalty)
        self.gates = keras.layers.Dense(
            num_classes * (moe_num_mixtures + 1),
            use_bias=False,
            kernel_regularizer=regularizer,
            dtype=self.dtype_policy,
            name="gates",
        )
        self.experts = keras.layers.Dense(
            num_classes * moe_num_mixtures,
            kernel_regularizer=regularizer,
            dtype=self.dtype_policy,
            name="experts",
        )

    def call(self, features):
        mixtures = self.moe_num_mixtures
        gate_logits = tf.reshape(
            self.gates(features), [-1, self.num_classes, mixtures + 1]
        )
        expert_logits = tf.reshape(
            self.experts(features), [-1, self.num_classes, mixtures]
        )
        gates = tf.nn.softmax(gate_logits)[:, :, :mixtures]
        return tf.reduce_sum(gates * tf.sigmoid(expert_logits), axis=-1)


def make_classifier(name, num_classes, head: configs.HeadConfig):
    """The classifier layer called `name` (LogisticModel or MoeModel).

    It computes in float32 under a mixed precision policy too: probabilities
    near 0 and 1 are what the loss and GAP read.
    """
    if name == "LogisticModel":
        return LogisticClassifier(
            num_classes, head.l2_penalty, dtype="float32", name="classifier"
        )
    if name == "MoeModel":
        return MoeClassifier(
            num_classes,
            head.moe_num_mixtures,
            head.l2_penalty,
            dtype="float32",
            name="classifier",
        )
    raise configs.UsageError(
        f"--video_level_classifier_model={name!r}: choose one of {list(configs.HEADS)}."
    )


class VideoLevelModel(models.BaseModel):
    """The classifier of the model's own name over the video's features."""

    def __init__(self, config, **kwargs):
        super().__init__(config, **kwargs)
        self.classifier = make_classifier(
            type(self).__name__, config.num_classes, config.head
        )

    def classify(self, features, batch=None, training=None):
        return self.classifier(features)


class LogisticModel(VideoLevelModel):
    """Logistic regression over the video-level features."""


class MoeModel(VideoLevelModel):
    """Mixture of experts over the video-level features (--moe_num_mixtures)."""
