"""Baseline models: shapes, padding invariance, learning, saving, the MoE."""

import numpy as np
import pytest
import keras
import tensorflow as tf

import frame_level_models
import losses
import models
import video_level_models

NUM_CLASSES = 6
FEATURE_DIM = 8
MAX_FRAMES = 12

TINY = {
    "FrameLevelLogisticModel": {},
    "DbofModel": {"dbof_cluster_size": 16, "dbof_hidden_size": 8, "iterations": 5},
    "LstmModel": {"lstm_cells": 8, "lstm_layers": 2},
    "GruModel": {"lstm_cells": 8, "lstm_layers": 2},
    "DCGNModel": {
        "dcgn_levels": 3,
        "dcgn_filters": 8,
        "dcgn_kernel": 3,
        "max_frames": MAX_FRAMES,
    },
    "DCGNModel:attention:4": {
        "dcgn_levels": 2,
        "dcgn_filters": 8,
        "dcgn_pooling": "attention",
        "dcgn_shots": 4,
        "max_frames": MAX_FRAMES,
    },
    "LogisticModel": {},
    "MoeModel": {"moe_num_mixtures": 3},
}


def make_model(name, **overrides):
    cls = models.find_model_class(
        name.split(":")[0], [frame_level_models, video_level_models]
    )
    model = cls(num_classes=NUM_CLASSES, **{**TINY[name], **overrides})
    return model.build_for(FEATURE_DIM, MAX_FRAMES, cls.frame_level)


def make_batch(frame_level, batch_size=4, seed=0):
    rng = np.random.default_rng(seed)
    num_frames = rng.integers(1, MAX_FRAMES + 1, size=batch_size)
    num_frames[0] = 1
    num_frames[-1] = MAX_FRAMES
    if frame_level:
        matrix = rng.normal(size=(batch_size, MAX_FRAMES, FEATURE_DIM))
        matrix *= np.arange(MAX_FRAMES)[None, :, None] < num_frames[:, None, None]
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


@pytest.mark.parametrize("name", sorted(TINY))
def test_predictions_are_probabilities(name):
    model = make_model(name)
    batch = make_batch(model.frame_level)
    predictions = model(batch)["predictions"].numpy()
    assert predictions.shape == (4, NUM_CLASSES)
    assert np.all(predictions >= 0) and np.all(predictions <= 1)


@pytest.mark.parametrize(
    "name", [n for n in sorted(TINY) if n not in ("LogisticModel", "MoeModel")]
)
def test_padded_frames_do_not_change_predictions(name):
    model = make_model(name)
    batch = make_batch(True)
    before = model(batch, training=False)["predictions"].numpy()
    valid = np.arange(MAX_FRAMES)[None, :] < batch["num_frames"].numpy()[:, None]
    garbage = np.random.default_rng(1).normal(
        scale=50, size=batch["video_matrix"].shape
    )
    noisy = np.where(valid[:, :, None], batch["video_matrix"].numpy(), garbage)
    after = model(
        {**batch, "video_matrix": tf.constant(noisy, tf.float32)}, training=False
    )["predictions"].numpy()
    np.testing.assert_allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TINY))
def test_loss_falls_when_training(name):
    model = make_model(name)
    batch = make_batch(model.frame_level, batch_size=8)
    optimizer = keras.optimizers.Adam(0.02)
    loss_fn = losses.CrossEntropyLoss()

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn.calculate_loss(
                model(batch, training=True)["predictions"], batch["labels"]
            )
        variables = model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    first = float(step())
    for _ in range(30):
        last = float(step())
    assert last < 0.7 * first


@pytest.mark.parametrize("name", sorted(TINY))
def test_saved_and_loaded_model_predicts_the_same(name, tmp_path):
    model = make_model(name)
    batch = make_batch(model.frame_level)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.hyperparameters() == model.hyperparameters()
    np.testing.assert_allclose(
        model(batch)["predictions"], loaded(batch)["predictions"], atol=1e-6
    )


def test_moe_matches_its_formula():
    model = make_model("MoeModel", moe_num_mixtures=2, l2_normalize_input=False)
    features = np.random.default_rng(3).normal(size=(5, FEATURE_DIM))
    predictions = model.classify(tf.constant(features, tf.float32)).numpy()
    gates = features @ model.gates.kernel.numpy()
    experts = features @ model.experts.kernel.numpy() + model.experts.bias.numpy()
    gates = gates.reshape(5, NUM_CLASSES, 3)
    gates = np.exp(gates) / np.exp(gates).sum(-1, keepdims=True)
    experts = 1 / (1 + np.exp(-experts.reshape(5, NUM_CLASSES, 2)))
    expected = (gates[:, :, :2] * experts).sum(-1)
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-6)


def test_inputs_are_l2_normalised_per_frame_unless_disabled():
    batch = make_batch(True)
    scaled = {**batch, "video_matrix": batch["video_matrix"] * 7.0}
    normalised = make_model("FrameLevelLogisticModel")
    np.testing.assert_allclose(
        normalised(batch)["predictions"], normalised(scaled)["predictions"], atol=1e-6
    )
    raw = make_model("FrameLevelLogisticModel", l2_normalize_input=False)
    assert not np.allclose(
        raw(batch)["predictions"], raw(scaled)["predictions"], atol=1e-4
    )


def test_uint8_frames_are_dequantised_inside_the_model():
    model = make_model("LstmModel")
    batch = make_batch(True)
    quantised = (
        np.random.default_rng(4)
        .integers(0, 256, size=batch["video_matrix"].shape)
        .astype(np.uint8)
    )
    valid = (np.arange(MAX_FRAMES)[None, :] < batch["num_frames"].numpy()[:, None])[
        :, :, None
    ]
    dequantised = (quantised * (4 / 255) + 4 / 512 - 2) * valid
    from_uint8 = model({**batch, "video_matrix": tf.constant(quantised)})
    from_float = model({**batch, "video_matrix": tf.constant(dequantised, tf.float32)})
    np.testing.assert_allclose(
        from_uint8["predictions"], from_float["predictions"], atol=1e-5
    )


def test_unknown_model_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="DbofModel.*LstmModel"):
        models.find_model_class("Lstm", [frame_level_models, video_level_models])
    with pytest.raises(ValueError, match="--video_level_classifier_model"):
        frame_level_models.FrameLevelLogisticModel(
            num_classes=3, video_level_classifier_model="Nope"
        )


def test_frame_level_models_end_in_the_chosen_head():
    model = make_model("GruModel", video_level_classifier_model="LogisticModel")
    assert isinstance(model.classifier, video_level_models.LogisticModel)
    assert model.hyperparameters()["video_level_classifier_model"] == "LogisticModel"


@pytest.mark.parametrize("name", sorted(TINY))
def test_training_checkpoints_restore_every_weight(name, tmp_path):
    # Keras 3 hides layers kept in lists from tf.train.Checkpoint; the
    # programs' checkpoints must still hold and restore all of them.
    import common

    keras.utils.set_random_seed(1)
    model = make_model(name)
    batch = make_batch(model.frame_level)
    path = common.make_checkpoint(model).save(str(tmp_path / "ckpt"))
    keras.utils.set_random_seed(2)
    fresh = make_model(name)
    assert not np.allclose(
        model(batch)["predictions"], fresh(batch)["predictions"], atol=1e-6
    )
    common.restore(fresh, path)
    np.testing.assert_allclose(
        model(batch)["predictions"], fresh(batch)["predictions"], atol=1e-6
    )
