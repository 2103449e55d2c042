"""Training losses for multi-label video classification (the starter's three).

Shapes: ``predictions`` float [B, C] (any float dtype; computed in float32),
``labels`` multi-hot [B, C] (any numeric dtype), optional ``label_weights``
[B, C]: 1 where a label is known, 0 where it is not and must not enter the
loss (the unrated classes of a rated segment, segments.py).
``per_example_loss`` returns float32 [B]; ``calculate_loss`` returns its
mean, a float32 scalar.
Under ``tf.distribute`` the training step should scale the per-example
losses by the global batch size (``tf.nn.compute_average_loss``) rather
than take a per-replica mean.

Formulas (docs/design.md, exact):

* CrossEntropyLoss: sum over classes of
  ``-(y log(p + 1e-5) + (1 - y) log(1 - p + 1e-5))``; ``p`` are
  probabilities.
* HingeLoss: sum over classes of ``max(0, 1 - (2y - 1) p)``.
* SoftmaxLoss: labels L1-normalised per row, ``y / max(sum(y), 1e-7)``,
  then ``-sum(y_norm * log(softmax(p)))``; ``p`` are treated as logits.
"""

import tensorflow as tf

from cli import UsageError


def _as_float32(predictions, labels):
    return (tf.cast(predictions, tf.float32), tf.cast(labels, tf.float32))


class BaseLoss:
    """A loss over [B, C] predictions and multi-hot labels: a sum over the
    classes of a per-class loss, the unknown labels left out."""

    def per_class_loss(self, predictions, labels):
        """float32 [B, C] from float32 predictions and labels."""
        raise NotImplementedError

    def per_example_loss(self, predictions, labels, label_weights=None):
        """Returns float32 [B], one loss per video (or segment)."""
        predictions, labels = _as_float32(predictions, labels)
        loss = self.per_class_loss(predictions, labels)
        if label_weights is not None:
            loss *= tf.cast(label_weights, tf.float32)
        return tf.reduce_sum(loss, axis=1)

    def calculate_loss(self, predictions, labels):
        """Returns the float32 scalar mean of per_example_loss over the batch."""
        return tf.reduce_mean(self.per_example_loss(predictions, labels))


class CrossEntropyLoss(BaseLoss):
    """Binary cross entropy summed over classes, on probabilities."""

    # Keeps log() finite, and its gradient bounded, at p = 0 and p = 1; the
    # starter's value, kept so that losses match its published numbers.
    epsilon = 1e-5

    def per_class_loss(self, predictions, labels):
        return -(
            labels * tf.math.log(predictions + self.epsilon)
            + (1.0 - labels) * tf.math.log(1.0 - predictions + self.epsilon)
        )


class HingeLoss(BaseLoss):
    """Hinge loss summed over classes, labels mapped to -1/+1."""

    def __init__(self, margin=1.0):
        """margin: the 1 in max(0, 1 - (2y - 1) p)."""
        self.margin = float(margin)

    def per_class_loss(self, predictions, labels):
        signs = 2.0 * labels - 1.0
        return tf.maximum(0.0, self.margin - signs * predictions)


class SoftmaxLoss(BaseLoss):
    """Cross entropy between L1-normalised labels and softmax(predictions)."""

    # Rows without labels divide by this instead of 0 and so lose nothing.
    epsilon = 1e-7

    def per_example_loss(self, predictions, labels, label_weights=None):
        predictions, labels = _as_float32(predictions, labels)
        if label_weights is not None:
            # The softmax runs over the known classes only (a finite floor:
            # 0 * -inf would be NaN).
            known = tf.cast(label_weights, tf.float32) > 0
            predictions = tf.where(known, predictions, -1e9)
            labels *= tf.cast(known, tf.float32)
        row_sums = tf.maximum(
            tf.reduce_sum(labels, axis=1, keepdims=True), self.epsilon
        )
        # log_softmax is log(softmax(p)) without the -inf the separate log gives
        # once softmax underflows (the starter's form).
        return -tf.reduce_sum(
            (labels / row_sums) * tf.nn.log_softmax(predictions, axis=1), axis=1
        )


_LOSSES = {
    "CrossEntropyLoss": CrossEntropyLoss,
    "HingeLoss": HingeLoss,
    "SoftmaxLoss": SoftmaxLoss,
}


def get_loss(name):
    """Returns a new instance of the loss class called `name` (--label_loss).

    Raises:
      UsageError: naming the valid losses, when `name` is not one.
    """
    if name not in _LOSSES:
        raise UsageError(
            f"--label_loss={name!r} is not a loss here; choose one of "
            f"{', '.join(sorted(_LOSSES))}."
        )
    return _LOSSES[name]()
