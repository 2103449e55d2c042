"""Video-level models: classifiers over one feature vector per video.

Each is a full model for video-level records (`mean_rgb`, `mean_audio`) and
also the head that ends every frame-level model
(`--video_level_classifier_model`).
"""

import sys

from absl import flags
import keras
import tensorflow as tf

import models

flags.DEFINE_integer(
    "moe_num_mixtures", 2, "Number of experts per class in MoeModel (paper Table 1: 2)."
)


class LogisticModel(models.BaseModel):
    """One sigmoid per class: p = sigmoid(x W + b).

    features [B, D] -> predictions [B, num_classes].
    """

    def __init__(self, l2_penalty=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.l2_penalty = l2_penalty
        self.logits = keras.layers.Dense(
            self.num_classes,
            kernel_regularizer=keras.regularizers.L2(l2_penalty),
            name="logits",
        )

    def classify(self, features, batch=None, training=None):
        return tf.sigmoid(self.logits(features))


class MoeModel(models.BaseModel):
    """The starter's mixture of experts, one mixture per class.

    p_c = sum_m softmax(gates_c)_m * sigmoid(experts_c)_m over M experts and a
    dummy expert (gate M + 1) that always predicts 0, so the gates can also
    say "none of the experts".

    features [B, D] -> predictions [B, num_classes].
    """

    def __init__(self, moe_num_mixtures=2, l2_penalty=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.moe_num_mixtures = moe_num_mixtures
        self.l2_penalty = l2_penalty
        regularizer = keras.regularizers.L2(l2_penalty)
        self.gates = keras.layers.Dense(
            self.num_classes * (moe_num_mixtures + 1),
            use_bias=False,
            kernel_regularizer=regularizer,
            name="gates",
        )
        self.experts = keras.layers.Dense(
            self.num_classes * moe_num_mixtures,
            kernel_regularizer=regularizer,
            name="experts",
        )

    def classify(self, features, batch=None, training=None):
        mixtures = self.moe_num_mixtures
        gate_logits = tf.reshape(
            self.gates(features), [-1, self.num_classes, mixtures + 1]
        )
        expert_logits = tf.reshape(
            self.experts(features), [-1, self.num_classes, mixtures]
        )
        gates = tf.nn.softmax(gate_logits)[:, :, :mixtures]
        return tf.reduce_sum(gates * tf.sigmoid(expert_logits), axis=-1)


def make_classifier(name, values, num_classes):
    """The head `name` (a class of this module), hyperparameters from `values`."""
    cls = models.find_model_class(
        name, [sys.modules[__name__]], flag="--video_level_classifier_model"
    )
    return models.construct(
        cls, values, num_classes=num_classes, l2_normalize_input=False
    )
