"""Every model: shapes, padding invariance, learning, checkpoints, the MoE."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import cli
import common
import configs
import losses
import model_testing
import training
import video_level_models

from model_testing import (
    FEATURE_DIM,
    MAX_FRAMES,
    NUM_CLASSES,
    TINY_BODIES,
    make_batch,
    tiny_model,
)

TINY = {
    "FrameLevelLogisticModel": {},
    "DbofModel": {},
    "LstmModel": {},
    "GruModel": {},
    "DCGNModel": {},
    "DCGNModel:attention:4": {
        "body": configs.DCGNConfig(
            dcgn_levels=2, dcgn_filters=8, dcgn_pooling="attention", dcgn_shots=4
        )
    },
    "DCGNModel:paper:4": {
        "body": configs.DCGNConfig(
            dcgn_levels=2,
            dcgn_filters=8,
            dcgn_shots=4,
            dcgn_propagation="paper",
        )
    },
    "LogisticModel": {},
    "MoeModel": {"head": configs.HeadConfig(moe_num_mixtures=3)},
}


def make_model(name, **overrides):
    return model_testing.tiny_model(name.split(":")[0], **{**TINY[name], **overrides})


@pytest.mark.parametrize("name", sorted(TINY))
def test_predictions_are_probabilities(name):
    model = make_model(name)
    batch = make_batch(model.config.frame_features)
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


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_loss_falls_when_training(name):
    model = make_model(name)
    batch = make_batch(model.config.frame_features, batch_size=8)
    # The program's own step (regularisation and clipping included).
    step = training.make_train_step(
        model, keras.optimizers.Adam(0.02), losses.CrossEntropyLoss(), 8
    )

    first = float(step(batch)[0])
    for _ in range(30):
        last = float(step(batch)[0])
    assert last < 0.7 * first


def test_moe_matches_its_formula():
    model = make_model(
        "MoeModel",
        head=configs.HeadConfig(moe_num_mixtures=2),
        l2_normalize_input=False,
    )
    features = np.random.default_rng(3).normal(size=(5, FEATURE_DIM))
    predictions = model.classify(tf.constant(features, tf.float32)).numpy()
    moe = model.classifier
    gates = features @ moe.gates.kernel.numpy()
    experts = features @ moe.experts.kernel.numpy() + moe.experts.bias.numpy()
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
    with pytest.raises(cli.UsageError, match="DbofModel.*LstmModel"):
        model_testing.tiny_config("Lstm")
    with pytest.raises(cli.UsageError, match="--video_level_classifier_model"):
        model_testing.tiny_config(
            "FrameLevelLogisticModel",
            head=configs.HeadConfig(video_level_classifier_model="Nope"),
        )


def test_frame_level_models_end_in_the_chosen_head():
    model = make_model(
        "GruModel",
        head=configs.HeadConfig(video_level_classifier_model="LogisticModel"),
    )
    assert isinstance(model.classifier, video_level_models.LogisticClassifier)


def test_every_configured_model_has_its_class():
    for name in configs.MODELS:
        model = model_testing.tiny_model(name)
        assert type(model).__name__ == name


@pytest.mark.parametrize("name", sorted(TINY))
def test_training_checkpoints_restore_every_weight(name, tmp_path):
    # Keras 3 hides layers kept in lists from tf.train.Checkpoint; the
    # programs' checkpoints must still hold and restore all of them.
    keras.utils.set_random_seed(1)
    model = make_model(name)
    batch = make_batch(model.config.frame_features)
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


@pytest.mark.parametrize("name", ["LogisticModel", "MoeModel"])
def test_l2_penalty_is_the_starters(name):
    # slim's l2_regularizer(l) = l * sum(w^2) / 2 over the weights (not the
    # biases), which the starter added to the loss.
    head = configs.HeadConfig(l2_penalty=0.01)
    model = make_model(name, head=head)
    model(make_batch(False))
    kernels = [v.numpy() for v in model.trainable_variables if "kernel" in v.path]
    expected = sum(0.01 * np.sum(k**2) / 2 for k in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("random_frames", [True, False])
def test_dbof_samples_only_real_frames_as_the_starter_did(random_frames):
    body = dataclasses.replace(
        TINY_BODIES[configs.DbofConfig], sample_random_frames=random_frames
    )
    model = tiny_model("DbofModel", body)
    # Frame t of every video holds the value t, so samples show their index.
    frames = tf.tile(tf.range(MAX_FRAMES, dtype=tf.float32)[None, :, None], [3, 1, 2])
    num_frames = tf.constant([2, 7, MAX_FRAMES])
    for is_training in (True, False):
        for _ in range(5):
            index = model.sample_frames(frames, num_frames, is_training)[
                :, :, 0
            ].numpy()
            assert index.shape == (3, body.iterations)
            assert np.all(index < num_frames.numpy()[:, None])
            if not random_frames:
                # A run of consecutive frames; the last repeats in short videos.
                steps = np.diff(index, axis=1)
                assert np.all(
                    (steps == 1) | ((steps == 0) & (index[:, 1:] == index[:, -1:]))
                )
    evaluation = model.sample_frames(frames, num_frames, False)[:, :, 0].numpy()
    expected = (
        [[0, 0, 1, 1, 1], [0, 2, 3, 4, 6], [1, 3, 6, 8, 10]]
        if random_frames
        else [[0, 1, 1, 1, 1], [1, 2, 3, 4, 5], [3, 4, 5, 6, 7]]
    )
    np.testing.assert_array_equal(evaluation, expected)


def test_dbof_activation_is_the_starters_sigmoid_unless_asked():
    assert configs.DbofConfig().dbof_activation == "sigmoid"
    outputs = {}
    for activation in ("sigmoid", "relu6"):
        body = dataclasses.replace(
            TINY_BODIES[configs.DbofConfig], dbof_activation=activation
        )
        model = tiny_model("DbofModel", body)
        hidden = model.project(
            tf.random.normal([4, 16]) * 10, model.hidden, None, training=False
        ).numpy()
        outputs[activation] = hidden
    sigmoid = outputs["sigmoid"]
    assert np.all((sigmoid >= 0) & (sigmoid <= 1)) and sigmoid.min() < 0.01
    assert outputs["relu6"].min() == 0.0 and outputs["relu6"].max() > 1


def train_losses(name, policy="float32", jit_compile=False, steps=12):
    """Losses of `steps` steps of one tiny model under a dtype policy."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        model = make_model(name)
        optimizer = keras.optimizers.Adam(0.01)
        optimizer.build(model.trainable_variables)
        step = training.make_train_step(
            model, optimizer, losses.CrossEntropyLoss(), 8, jit_compile=jit_compile
        )
        batch = make_batch(model.config.frame_features, batch_size=8)
        return [float(step(batch)[0]) for _ in range(steps)]
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "DbofModel",
        "GruModel",
        "DCGNModel:attention:4",
        "DCGNModel:paper:4",
        "MoeModel",
    ],
)
def test_xla_and_bfloat16_train_to_the_same_loss(name):
    reference = train_losses(name)
    # XLA reorders float32 arithmetic only: the same losses to 1e-4 (DBoF's
    # random frames come from another random stream under XLA: 5%).
    np.testing.assert_allclose(
        train_losses(name, jit_compile=True),
        reference,
        rtol=0.05 if name == "DbofModel" else 1e-4,
    )
    # bfloat16 keeps 8 bits of mantissa in the body; the head, the loss and
    # the variables stay float32: within 5% after 12 steps, and still falling.
    mixed = train_losses(name, "mixed_bfloat16")
    np.testing.assert_allclose(mixed, reference, rtol=0.05)
    assert mixed[-1] < mixed[0]


def loop_bodies(graph_def):
    """Every while-loop body function in a graph and its function library."""
    library = {f.signature.name: f for f in graph_def.library.function}
    bodies = set()
    for nodes in [graph_def.node] + [f.node_def for f in library.values()]:
        bodies.update(
            n.attr["body"].func.name
            for n in nodes
            if n.op in ("While", "StatelessWhile")
        )
    return [library[name] for name in sorted(bodies)]


@pytest.mark.parametrize("name", ["LstmModel", "GruModel"])
def test_recurrent_loops_read_no_weights(name):
    # A weight read inside the loop is stacked once per frame for the
    # gradient; under XLA every copy is real (52 MB a frame at the paper's
    # 2 x 1024 cells). Read outside, the loop and its gradient capture it.
    model = make_model(name)
    batch = make_batch(model.config.frame_features, batch_size=4)

    @tf.function
    def gradients(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(batch, training=True)["predictions"])
        return tape.gradient(loss, model.trainable_variables)

    graph_def = gradients.get_concrete_function(batch).graph.as_graph_def()
    bodies = loop_bodies(graph_def)
    # One forward loop and one gradient loop per recurrent layer.
    assert len(bodies) == 2 * model.config.body.lstm_layers
    for body in bodies:
        assert [n.name for n in body.node_def if n.op == "ReadVariableOp"] == []
    assert all(g is not None for g in gradients(batch))


def starter_parameter_count(name, config):
    """The starter's TF1 variables of `name` (slim batch norm with center and
    scale: 4 values per feature, as Keras' BatchNormalization)."""
    d, c = config.feature_dim, config.num_classes
    m = config.head.moe_num_mixtures

    def moe(width):
        return width * c * (m + 1) + width * c * m + c * m

    if name == "LogisticModel":
        return d * c + c
    if name == "MoeModel":
        return moe(d)
    body = config.body
    if name == "DbofModel":
        k, h = body.dbof_cluster_size, body.dbof_hidden_size
        return 4 * d + d * k + 4 * k + k * h + 4 * h + moe(h)
    if name == "LstmModel":
        u, layers = body.lstm_cells, body.lstm_layers
        # BasicLSTMCell: kernel [in + u, 4u] and bias [4u] per layer.
        lstm = 4 * u * (d + u) + 4 * u + (layers - 1) * (4 * u * (2 * u) + 4 * u)
        return lstm + moe(u)
    raise KeyError(name)


@pytest.mark.parametrize(
    "name", ["LogisticModel", "MoeModel", "DbofModel", "LstmModel"]
)
def test_parameter_counts_are_the_starters(name):
    model = make_model(name)
    assert model.count_params() == starter_parameter_count(name, model.config)


def test_compiled_optimizer_update_trains_as_keras_own_update(monkeypatch):
    # On one device the step compiles the optimizer's update with XLA; Keras'
    # own update (as under a mirrored strategy) must give the same training.
    assert training._single_device(tf.distribute.get_strategy())
    fused = train_losses("DCGNModel:attention:4", steps=6)
    monkeypatch.setattr(training, "_single_device", lambda strategy: False)
    np.testing.assert_allclose(
        train_losses("DCGNModel:attention:4", steps=6), fused, rtol=1e-5
    )
