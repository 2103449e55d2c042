"""losses against the formulas of docs/design.md written in numpy."""

import numpy as np
import pytest
import tensorflow as tf

import cli
import losses


def random_batch(seed, batch=4, classes=6):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.01, 0.99, (batch, classes)).astype(np.float32)
    labels = (rng.random((batch, classes)) < 0.4).astype(np.float32)
    labels[0] = 0  # a video without labels
    return probs, labels


def np_cross_entropy(p, y):
    p, y = p.astype(np.float64), y.astype(np.float64)
    return np.sum(-(y * np.log(p + 1e-5) + (1 - y) * np.log(1 - p + 1e-5)), 1)


def np_hinge(p, y):
    p, y = p.astype(np.float64), y.astype(np.float64)
    return np.sum(np.maximum(0.0, 1.0 - (2 * y - 1) * p), 1)


def np_softmax(p, y):
    p, y = p.astype(np.float64), y.astype(np.float64)
    y = y / np.maximum(y.sum(1, keepdims=True), 1e-7)
    e = np.exp(p - p.max(1, keepdims=True))
    return -np.sum(y * np.log(e / e.sum(1, keepdims=True)), 1)


CASES = [
    (losses.CrossEntropyLoss, np_cross_entropy),
    (losses.HingeLoss, np_hinge),
    (losses.SoftmaxLoss, np_softmax),
]


@pytest.mark.parametrize("loss_cls,formula", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_formula(loss_cls, formula, seed):
    p, y = random_batch(seed)
    if loss_cls is losses.SoftmaxLoss:
        p = p * 8 - 4  # logits
    loss = loss_cls()
    per_example = loss.per_example_loss(tf.constant(p), tf.constant(y))
    assert per_example.shape == (4,) and per_example.dtype == tf.float32
    np.testing.assert_allclose(per_example.numpy(), formula(p, y), rtol=1e-5, atol=1e-5)
    total = loss.calculate_loss(tf.constant(p), tf.constant(y))
    assert total.shape == () and total.dtype == tf.float32
    assert float(total) == pytest.approx(float(np.mean(formula(p, y))), rel=1e-5)
    assert float(total) == pytest.approx(float(tf.reduce_mean(per_example)), rel=1e-6)


def test_hand_values():
    # One class, p = 0.5, y = 1:
    #   cross entropy -log(0.5 + 1e-5); hinge max(0, 1 - 0.5) = 0.5.
    p, y = tf.constant([[0.5]]), tf.constant([[1.0]])
    assert float(losses.CrossEntropyLoss().calculate_loss(p, y)) == pytest.approx(
        -np.log(0.50001), rel=1e-6
    )
    assert float(losses.HingeLoss().calculate_loss(p, y)) == 0.5
    # Softmax over equal logits of 4 classes, labels on 2 of them: each label
    # weighs 1/2 and log softmax is log(1/4) -> loss log 4.
    logits = tf.zeros([1, 4])
    assert float(
        losses.SoftmaxLoss().calculate_loss(logits, tf.constant([[1.0, 1.0, 0.0, 0.0]]))
    ) == pytest.approx(np.log(4.0), rel=1e-6)
    # A video without labels costs nothing under the softmax loss.
    assert float(losses.SoftmaxLoss().calculate_loss(logits, tf.zeros([1, 4]))) == 0.0


@pytest.mark.parametrize("loss_cls,_", CASES)
def test_gradients_finite_at_zero_and_one(loss_cls, _):
    p = tf.Variable([[0.0, 1.0, 0.0, 1.0]])
    y = tf.constant([[0.0, 1.0, 1.0, 0.0]])
    with tf.GradientTape() as tape:
        value = loss_cls().calculate_loss(p, y)
    grad = tape.gradient(value, p)
    assert np.all(np.isfinite(value.numpy()))
    assert np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize("loss_cls,_", CASES)
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16, tf.float64])
def test_computes_in_float32(loss_cls, _, dtype):
    p, y = random_batch(3)
    reference = loss_cls().per_example_loss(tf.constant(p), tf.constant(y))
    out = loss_cls().per_example_loss(tf.cast(p, dtype), tf.constant(y, tf.int32))
    assert out.dtype == tf.float32
    # Only the input rounding differs (bfloat16 keeps ~3 significant digits).
    np.testing.assert_allclose(out.numpy(), reference.numpy(), rtol=0.05)


def test_get_loss():
    assert isinstance(losses.get_loss("CrossEntropyLoss"), losses.CrossEntropyLoss)
    assert isinstance(losses.get_loss("HingeLoss"), losses.HingeLoss)
    assert isinstance(losses.get_loss("SoftmaxLoss"), losses.SoftmaxLoss)
    with pytest.raises(cli.UsageError) as error:
        losses.get_loss("FocalLoss")
    for name in ("CrossEntropyLoss", "HingeLoss", "SoftmaxLoss", "FocalLoss"):
        assert name in str(error.value)


def test_works_inside_tf_function():
    loss = losses.CrossEntropyLoss()
    p, y = random_batch(4)
    compiled = tf.function(loss.calculate_loss)
    assert float(compiled(tf.constant(p), tf.constant(y))) == pytest.approx(
        float(np.mean(np_cross_entropy(p, y))), rel=1e-5
    )


@pytest.mark.parametrize("loss_cls,formula", CASES)
def test_label_weights_leave_the_unrated_classes_out(loss_cls, formula):
    """A rated segment's loss is the loss over its rated classes alone: the
    unrated ones change neither the value nor get a gradient."""
    p, y = random_batch(5)
    if loss_cls is losses.SoftmaxLoss:
        p = p * 8 - 4
    weights = np.zeros_like(y)
    rated = [[0, 3], [1, 2, 5], [5], [4, 0]]
    for row, classes in enumerate(rated):
        weights[row, classes] = 1.0
    predictions = tf.Variable(p)
    with tf.GradientTape() as tape:
        got = loss_cls().per_example_loss(predictions, tf.constant(y), weights)
    expected = [
        formula(p[i : i + 1, c], y[i : i + 1, c])[0] for i, c in enumerate(rated)
    ]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)
    gradient = tape.gradient(got, predictions).numpy()
    assert np.all(gradient[weights == 0] == 0)
    assert np.any(gradient[weights == 1] != 0)
