"""Tests of the DCGN layers against hand-computed numpy references."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import configs
import dcgn_layers as dl

K = 3


def encoder_of(
    levels,
    filters,
    pooling,
    num_shots,
    max_frames,
    propagation=configs.DCGNConfig.dcgn_propagation,
):
    config = configs.DCGNConfig(
        dcgn_levels=levels,
        dcgn_filters=filters,
        dcgn_kernel=K,
        dcgn_pooling=pooling,
        dcgn_shots=num_shots,
        dcgn_propagation=propagation,
    )
    return dl.DCGNEncoder(config, max_frames)


POOLINGS = ["average", "attention"]
SHOTS = [0, 5]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _np_adjacency(p, mask, centre=False):
    """Reference for eq. 1 clamped at zero, self-loop 1, normalised (eq. 7)."""
    p = np.where(mask[:, None], p, 0.0).astype(np.float64)
    if centre and mask.any():
        p = np.where(mask[:, None], p - p[mask].mean(0), 0.0)
    norm = np.linalg.norm(p, axis=1, keepdims=True)
    unit = np.divide(p, norm, out=np.zeros_like(p), where=norm > 1e-6)
    a = np.clip(unit @ unit.T, 0.0, 1.0)
    np.fill_diagonal(a, 1.0)
    a *= np.outer(mask, mask)
    degree = a.sum(1)
    inv = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    return a * np.outer(inv, inv)


def _np_layer_norm(x, gamma, beta, epsilon=1e-3):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + epsilon) * gamma + beta


def _np_level(h, mask, kernel_weights, bias, p, centre=False, norm=None):
    """Reference DCGN level given the pooled nodes p: relu(A_hat c + b).

    norm: None, or (gamma, beta) of the layer normalisation after the relu.
    """
    n_out = math.ceil(len(h) / K)
    h = np.where(mask[:, None], h, 0.0)
    h = np.concatenate([h, np.zeros((n_out * K - len(h), h.shape[1]))])
    c = np.stack(
        [sum(h[i * K + k] @ kernel_weights[k] for k in range(K)) for i in range(n_out)]
    )
    mask_out = np.pad(mask, (0, n_out * K - len(mask))).reshape(n_out, K).any(1)
    out = np.maximum(_np_adjacency(p, mask_out, centre) @ c + bias, 0.0)
    if norm is not None:
        out = _np_layer_norm(out, *norm)
    return out * mask_out[:, None], mask_out


def _equal_shots(num_frames, num_shots):
    """Boundaries splitting each video evenly; short videos get empty shots."""
    return np.stack(
        [np.floor(np.arange(num_shots + 1) * n / num_shots) for n in num_frames]
    ).astype(np.int32)


def _random_bias(layer, rng):
    """Gives biases and normalisation scales and offsets random values."""
    for weight in layer.weights:
        if any(name in weight.path for name in ("bias", "gamma", "beta")):
            weight.assign(rng.normal(size=weight.shape).astype("float32"))


# ---------------------------------------------------------------- pooling


def test_average_pooling_matches_eq4_over_real_nodes():
    h = _rng().normal(size=(1, 7, 2)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 1, 0]], bool)  # a hole inside window 1
    p, mask_out = dl.GraphPooling(K, "average")(h, mask)
    expected = np.stack([h[0, 0:3].mean(0), (h[0, 3] + h[0, 5]) / 2, np.zeros(2)])
    np.testing.assert_allclose(p.numpy()[0], expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(mask_out.numpy()[0], [True, True, False])


@pytest.mark.parametrize("per_feature", [False, True])
def test_attention_is_softmax_over_real_nodes(per_feature):
    rng = _rng(1)
    h = rng.normal(size=(2, 8, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0, 1, 1]], bool)
    layer = dl.GraphPooling(K, "attention", per_feature=per_feature)
    p, mask_out, alpha = layer(h, mask, return_attention=True)
    p, mask_out, alpha = p.numpy(), mask_out.numpy(), alpha.numpy()
    scores = 4 if per_feature else 1
    assert alpha.shape == (2, 3, K, scores)
    assert layer.attention_kernel.shape == (4, scores)
    np.testing.assert_array_equal(mask_out, [[1, 1, 0], [1, 0, 1]])

    window_mask = np.pad(mask, ((0, 0), (0, 1))).reshape(2, 3, K)
    sums = alpha.sum(axis=2)
    np.testing.assert_allclose(sums[mask_out], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(sums[~mask_out], 0.0)
    assert np.all(alpha[~window_mask] == 0.0)
    np.testing.assert_array_equal(p[~mask_out], 0.0)

    w = layer.attention_kernel.numpy()
    w = rng.normal(size=w.shape).astype("float32")
    layer.attention_kernel.assign(w)
    p, _, alpha = [t.numpy() for t in layer(h, mask, return_attention=True)]
    padded = np.pad(h, ((0, 0), (0, 1), (0, 0))).reshape(2, 3, K, 4)
    for i in range(2):
        for j in range(3):
            real = window_mask[i, j]
            if not real.any():
                continue
            scores = padded[i, j, real] @ w
            weights = np.exp(scores - scores.max(0))
            weights /= weights.sum(0)
            np.testing.assert_allclose(alpha[i, j, real], weights, rtol=1e-5)
            np.testing.assert_allclose(
                p[i, j], (weights * padded[i, j, real]).sum(0), rtol=1e-5, atol=1e-6
            )
    # Windows weight their nodes unequally (eq. 5 is no plain average).
    assert np.ptp(alpha[0, 0], axis=0).max() > 1e-3


def test_return_attention_requires_attention_mode():
    with pytest.raises(ValueError):
        dl.GraphPooling(K, "average")(
            np.ones((1, 3, 2), "float32"), np.ones((1, 3), bool), return_attention=True
        )
    with pytest.raises(ValueError):
        dl.GraphPooling(K, "max")


# ------------------------------------------------------------ convolution


def test_node_convolution_matches_eq6_and_strided_conv1d():
    rng = _rng(2)
    h = rng.normal(size=(2, 7, 3)).astype("float32")
    mask = np.array([[1] * 7, [1] * 5 + [0] * 2], bool)
    layer = dl.NodeConvolution(4, K)
    c = layer(h, mask).numpy()
    w = layer.conv_kernel.numpy()
    assert c.shape == (2, 3, 4)
    for b in range(2):
        x = np.where(mask[b][:, None], h[b], 0.0)
        x = np.concatenate([x, np.zeros((2, 3))])
        expected = [sum(x[i * K + k] @ w[k] for k in range(K)) for i in range(3)]
        np.testing.assert_allclose(c[b], expected, rtol=1e-5, atol=1e-6)

    conv = keras.layers.Conv1D(4, K, strides=K, use_bias=False)
    zeroed = np.pad(np.where(mask[..., None], h, 0.0), ((0, 0), (0, 2), (0, 0)))
    conv.build(zeroed.shape)
    conv.set_weights([w])
    np.testing.assert_allclose(c, conv(zeroed).numpy(), rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------- adjacency


def test_adjacency_with_negative_zero_duplicate_and_padded_nodes():
    rng = _rng(3)
    v = rng.normal(size=4)
    p = np.stack(
        [v, -v, np.zeros(4), v, 2 * v, rng.normal(size=4), np.full(4, np.nan)]
    ).astype("float32")[None]
    mask = np.array([[1, 1, 1, 1, 1, 1, 0]], bool)
    raw = dl.cosine_adjacency(p, mask).numpy()[0]
    a_hat = dl.NormalizedAdjacency(centre=False)(p, mask).numpy()[0]
    for a in (raw, a_hat):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, a.T)
        np.testing.assert_array_equal(a[6], 0.0)
        np.testing.assert_array_equal(a[:, 6], 0.0)
        assert np.all(a >= 0.0)
    np.testing.assert_array_equal(np.diag(raw)[:6], 1.0)
    assert raw[0, 1] == 0.0  # cosine -1 is no edge
    np.testing.assert_array_equal(raw[2, [0, 1, 3, 4, 5]], 0.0)  # zero vector
    np.testing.assert_allclose(raw[0, [3, 4]], 1.0, rtol=1e-6)  # duplicates
    np.testing.assert_allclose(
        a_hat, _np_adjacency(p[0], mask[0]), rtol=1e-5, atol=1e-7
    )
    assert np.abs(np.linalg.eigvalsh(a_hat.astype(np.float64))).max() <= 1 + 1e-5

    p_var = tf.Variable(np.nan_to_num(p))
    for centre in (False, True):
        with tf.GradientTape() as tape:
            adjacency = dl.NormalizedAdjacency(centre=centre)(p_var, mask)
            loss = tf.reduce_sum(adjacency**2)
        assert np.all(np.isfinite(tape.gradient(loss, p_var).numpy()))


def test_centred_adjacency_ignores_what_all_nodes_share():
    rng = _rng(14)
    p = rng.normal(size=(1, 6, 5)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 1, 0]], bool)
    centred = dl.NormalizedAdjacency()(p, mask).numpy()[0]
    np.testing.assert_allclose(
        centred, _np_adjacency(p[0], mask[0], centre=True), rtol=1e-5, atol=1e-6
    )
    # A large offset common to every node (what ReLU outputs and a video's
    # own look share) joins every pair in the literal eq. 1 -- the averaging
    # matrix that makes all nodes equal -- but leaves the centred form alone.
    shifted = p + 20.0 * rng.normal(size=(1, 1, 5)).astype("float32")
    literal = dl.cosine_adjacency(shifted, mask).numpy()[0][:5, :5]
    assert literal.min() > 0.95
    np.testing.assert_allclose(
        dl.NormalizedAdjacency()(shifted, mask).numpy()[0], centred, atol=1e-4
    )
    assert (centred[:5, :5] == 0.0).sum() >= 4
    # One real node: nothing to compare with, only its self-loop.
    single = dl.NormalizedAdjacency()(p, np.eye(1, 6, 2, dtype=bool)).numpy()[0]
    np.testing.assert_array_equal(single, np.eye(6)[2] * np.eye(6)[:, 2:3])


# ----------------------------------------------------------------- levels


@pytest.mark.parametrize("num_nodes", [1, 2, 3, 4, 7, 300])
def test_level_output_shapes(num_nodes):
    h = _rng(4).normal(size=(2, num_nodes, 8)).astype("float32")
    mask = np.arange(num_nodes)[None] < np.array([[num_nodes], [1]])
    n_out = math.ceil(num_nodes / K)
    for pooling in POOLINGS:
        out, mask_out = dl.DCGNLevel(8, K, pooling)(h, mask)
        assert out.shape == (2, n_out, 8)
        np.testing.assert_array_equal(mask_out.numpy()[0], True)
        np.testing.assert_array_equal(mask_out.numpy()[1], np.arange(n_out) == 0)
        np.testing.assert_array_equal(out.numpy()[1, 1:], 0.0)


@pytest.mark.parametrize("choices", [True, False], ids=["default", "literal"])
def test_average_level_matches_numpy(choices):
    rng = _rng(5)
    h = rng.normal(size=(2, 10, 4)).astype("float32")
    mask = np.array([[1] * 10, [1] * 4 + [0] * 6], bool)
    level = dl.DCGNLevel(
        5,
        K,
        "average",
        centre_adjacency=choices,
        normalization="node" if choices else None,
    )
    out, mask_out = level(h, mask)
    _random_bias(level, rng)
    out = level(h, mask)[0].numpy()
    w = level.convolution.conv_kernel.numpy()
    b = level.propagation.bias.numpy()
    norm = None
    if choices:
        layer_norm = level.propagation.norm
        norm = (layer_norm.gamma.numpy(), layer_norm.beta.numpy())
    for i in range(2):
        hm = np.where(mask[i][:, None], h[i], 0.0)
        pooled = np.stack(
            [
                hm[j * K : (j + 1) * K].sum(0)
                / max(mask[i][j * K : (j + 1) * K].sum(), 1)
                for j in range(4)
            ]
        )
        expected, expected_mask = _np_level(
            h[i], mask[i], w, b, pooled, centre=choices, norm=norm
        )
        np.testing.assert_allclose(out[i], expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(mask_out.numpy()[i], expected_mask)


def test_propagation_with_own_weight_and_activation():
    rng = _rng(6)
    c = rng.normal(size=(1, 4, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 0]], bool)
    a_hat = dl.NormalizedAdjacency()(c, mask)
    layer = dl.GraphPropagation(filters=2, activation="tanh")
    out = layer(c, a_hat, mask).numpy()[0]
    expected = np.tanh(a_hat.numpy()[0] @ (c[0] @ layer.propagation_kernel.numpy()))
    expected[3] = 0.0
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ shots


def test_shot_means_and_subintervals_for_every_shot_length():
    rng = _rng(7)
    frames = rng.normal(size=(1, 14, 2)).astype("float32")
    # Shot lengths 1, 2 (< K), 3 (= K), 5 (> K), 0 (empty), then frames
    # 11..13 are padding that no shot may touch.
    bounds = np.array([[0, 1, 3, 6, 11, 11]], np.int32)
    mask = np.arange(14)[None] < 11
    level = dl.ShotLevel(4, K)
    level(frames, mask, bounds)
    p, sub, shot_mask = [t.numpy() for t in level.shot_features(frames, mask, bounds)]
    f = frames[0]
    np.testing.assert_array_equal(shot_mask[0], [1, 1, 1, 1, 0])
    expected_p = [
        f[s:e].mean(0) if e > s else np.zeros(2)
        for s, e in zip(bounds[0, :-1], bounds[0, 1:])
    ]
    np.testing.assert_allclose(p[0], expected_p, rtol=1e-5, atol=1e-6)

    sub = sub[0].reshape(5, K, 2)
    expected_sub = [
        [f[0], f[0], f[0]],
        [f[1], (f[1] + f[2]) / 2, f[2]],
        [f[3], f[4], f[5]],
        [
            (3 * f[6] + 2 * f[7]) / 5,
            (f[7] + 3 * f[8] + f[9]) / 5,
            (2 * f[9] + 3 * f[10]) / 5,
        ],
        np.zeros((K, 2)),
    ]
    np.testing.assert_allclose(sub, expected_sub, rtol=1e-5, atol=1e-6)
    # Each shot's mean is the mean of its K sub-interval means.
    np.testing.assert_allclose(sub.mean(1), p[0], rtol=1e-5, atol=1e-6)

    _random_bias(level, rng)
    out, out_mask = [t.numpy() for t in level(frames, mask, bounds)]
    expected, _ = _np_level(
        sub.reshape(15, 2),
        np.repeat(shot_mask[0], K),
        level.convolution.conv_kernel.numpy(),
        level.propagation.bias.numpy(),
        p[0],
        centre=True,
        norm=(
            level.propagation.norm.gamma.numpy(),
            level.propagation.norm.beta.numpy(),
        ),
    )
    np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out_mask, shot_mask)


def test_shot_boundaries_past_num_frames_are_clipped():
    frames = _rng(8).normal(size=(1, 6, 2)).astype("float32")
    mask = np.arange(6)[None] < 4
    p, _, shot_mask = dl.ShotLevel(2, K).shot_features(
        frames, mask, np.array([[0, 2, 6]], np.int32)
    )
    np.testing.assert_allclose(p.numpy()[0, 1], frames[0, 2:4].mean(0), rtol=1e-6)
    np.testing.assert_array_equal(shot_mask.numpy(), [[True, True]])


# ---------------------------------------------------------------- encoder


def test_level_nodes_and_readout_width():
    def config(levels, shots=0):
        return configs.DCGNConfig(dcgn_levels=levels, dcgn_filters=8, dcgn_shots=shots)

    assert config(5).level_nodes(300) == [100, 34, 12, 4, 2]
    assert config(1).level_nodes(300) == [100]
    assert config(3, shots=10).level_nodes(300) == [10, 4, 2]
    assert config(1, shots=10).level_nodes(300) == [10]
    # Without shots every level has dcgn_filters; 27 shots end in 1 node where
    # the frames end in 4, so the last level is 4x as wide.
    assert config(4).readout_filters(300) == 8
    assert config(4, shots=27).readout_filters(300) == 32
    encoder = dl.DCGNEncoder(config(4, shots=27), 300)
    frames, num_frames, bounds = _encoder_inputs(300, 5, [300, 40], 27)
    assert encoder(frames, num_frames, bounds).shape == (2, 1 * 32)


def _encoder_inputs(max_frames, dim, lengths, num_shots, seed=0):
    rng = _rng(seed)
    frames = rng.normal(size=(len(lengths), max_frames, dim)).astype("float32")
    num_frames = np.array(lengths, np.int32)
    frames[np.arange(max_frames)[None] >= num_frames[:, None]] = 0.0
    bounds = _equal_shots(lengths, num_shots) if num_shots else None
    return frames, num_frames, bounds


@pytest.mark.parametrize("num_shots", SHOTS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_encoder_shapes_for_every_length(pooling, num_shots):
    # 32 filters: a real node is all zero only if all 32 units fall below the
    # ReLU, which the last assertion must not meet by chance.
    keras.utils.set_random_seed(0)
    lengths = [1, 2, 3, 4, 7, 300]
    encoder = encoder_of(5 if not num_shots else 3, 32, pooling, num_shots, 300)
    frames, num_frames, bounds = _encoder_inputs(300, 8, lengths, num_shots)
    out = encoder(frames, num_frames, bounds).numpy()
    # 300 -> ... -> 2 nodes of 32; 5 shots -> 2 -> 1 node, as wide as the
    # 12 nodes the frames reach in 3 levels.
    num_nodes, width = (2, 32) if not num_shots else (1, 12 * 32)
    assert encoder.num_nodes == num_nodes
    assert out.shape == (len(lengths), num_nodes * width)
    assert np.all(np.isfinite(out))
    if not num_shots:
        # The last node starts at frame 243: shorter videos leave it padded.
        np.testing.assert_array_equal(out[:5, 32:], 0.0)
        assert np.any(out[5, 32:] != 0.0)


@pytest.mark.parametrize("num_shots", SHOTS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_padded_frames_do_not_change_the_output(pooling, num_shots):
    encoder = encoder_of(3, 8, pooling, num_shots, 30)
    frames, num_frames, bounds = _encoder_inputs(30, 8, [1, 4, 11, 30], num_shots)
    clean = encoder(frames, num_frames, bounds).numpy()
    garbage = _rng(9).normal(scale=1e3, size=frames.shape).astype("float32")
    garbage[0, 5] = np.nan
    garbage[1, 20] = np.inf
    padded = np.arange(30)[None, :, None] >= num_frames[:, None, None]
    dirty = encoder(np.where(padded, garbage, frames), num_frames, bounds).numpy()
    np.testing.assert_allclose(dirty, clean, rtol=1e-6, atol=1e-6)
    assert np.any(clean != 0.0)


def test_padded_nodes_do_not_change_level_outputs():
    rng = _rng(10)
    h = rng.normal(size=(2, 9, 4)).astype("float32")
    mask = np.array([[1, 0, 1, 0, 0, 0, 1, 1, 0], [0] * 3 + [1] * 6], bool)
    dirty = np.where(mask[..., None], h, rng.normal(scale=1e3, size=h.shape))
    for layer in (dl.DCGNLevel(4, K, "average"), dl.DCGNLevel(4, K, "attention")):
        clean_out = [t.numpy() for t in layer(h, mask)]
        dirty_out = [t.numpy() for t in layer(dirty.astype("float32"), mask)]
        for a, b in zip(clean_out, dirty_out):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_levels_keep_nodes_apart_and_at_unit_scale():
    # Nine shots of 27 frames sharing a video offset, L2-normalised like the
    # model's input: 243 -> 81 -> 27 -> 9 nodes, one per shot.
    rng = _rng(15)
    shots = rng.normal(size=(4, 9, 16)) + 0.5 * rng.normal(size=(4, 1, 16))
    frames = np.repeat(shots, 27, axis=1) + 0.5 * rng.normal(size=(4, 243, 16))
    frames = (frames / np.linalg.norm(frames, axis=-1, keepdims=True)).astype("float32")

    def last_level(propagation):
        keras.utils.set_random_seed(0)
        encoder = encoder_of(3, 32, "average", 0, 243, propagation)
        h = encoder(frames, np.full(4, 243)).numpy().reshape(4, 9, 32)
        # Share of the nodes' second moment that differs between nodes.
        between = (h.var(1).sum(-1) / (h**2).mean(1).sum(-1)).mean()
        return between, np.sqrt((h**2).mean())

    between, scale = last_level("layer_norm")
    assert between > 0.2 and 0.5 < scale < 2.0
    # The literal eqs. 1 and 7 average every node into the same vector and
    # shrink the activations level by level.
    between, scale = last_level("paper")
    assert between < 0.01 and scale < 0.2
    # The residual form keeps the nodes apart without a
    # normalisation, and its activations neither vanish nor blow up.
    between, scale = last_level("residual")
    assert between > 0.2 and 0.1 < scale < 2.0


def test_propagation_names_match_their_forms():
    assert set(dl.PROPAGATION_FORMS) == set(configs.DCGNConfig.PROPAGATIONS)


def test_residual_propagation_adds_each_nodes_own_message():
    rng = _rng(16)
    c = rng.normal(size=(2, 5, 3)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 1, 1]], bool)
    p = rng.normal(size=(2, 5, 4)).astype("float32")
    adjacency = dl.NormalizedAdjacency()(p, mask)
    layer = dl.GraphPropagation(residual=True)
    h = layer(c, adjacency, mask).numpy()
    bias = rng.normal(size=3).astype("float32")
    layer.bias.assign(bias)
    h = layer(c, adjacency, mask).numpy()
    for b in range(2):
        real = mask[b]
        a = adjacency.numpy()[b][np.ix_(real, real)]
        expected = np.maximum(a @ c[b][real] + c[b][real] + bias, 0.0)
        np.testing.assert_allclose(h[b][real], expected, rtol=1e-5, atol=1e-6)
        assert np.all(h[b][~real] == 0.0)


def test_encoder_fits_frames_to_max_frames():
    encoder = encoder_of(2, 4, "average", 0, 12)
    frames, num_frames, _ = _encoder_inputs(12, 3, [5, 12], 0)
    full = encoder(frames, num_frames).numpy()
    np.testing.assert_allclose(
        encoder(frames[:, :7], num_frames).numpy()[0], full[0], rtol=1e-6
    )
    longer = np.concatenate([frames, np.ones((2, 4, 3), "float32")], axis=1)
    np.testing.assert_allclose(encoder(longer, num_frames).numpy(), full, rtol=1e-6)
    with pytest.raises(ValueError):
        encoder_of(2, 4, "average", 4, 12)(frames, num_frames)


@pytest.mark.parametrize("propagation", configs.DCGNConfig.PROPAGATIONS)
@pytest.mark.parametrize("num_shots", [0, 27])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_every_weight_gets_a_gradient(pooling, num_shots, propagation):
    # 81 frames -> 27 -> 9 nodes, or 27 shots -> 9 nodes: the last level keeps
    # enough real nodes that its centred adjacency has edges (three centred
    # nodes are often all dissimilar, leaving no edge and no gradient to the
    # pooling), so its adjacency (and attention) carries gradient.
    keras.utils.set_random_seed(13)
    encoder = encoder_of(2, 8, pooling, num_shots, 81, propagation)
    frames, num_frames, bounds = _encoder_inputs(
        81, 6, [81, 60, 48], num_shots, seed=11
    )
    target = _rng(12).normal(size=(3, encoder.num_nodes * 8)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(frames, num_frames, bounds) * target)
    grads = tape.gradient(loss, encoder.trainable_weights)
    # Per level: kernel, bias, layer_norm's scale and offset, attention
    # kernel (attention only).
    per_level = {"residual": 2, "layer_norm": 4, "paper": 2}[propagation]
    expected = (per_level + (pooling == "attention")) * 2
    if num_shots:
        expected -= {"average": 0, "attention": 1}[pooling]
    assert len(encoder.trainable_weights) == expected
    for weight, grad in zip(encoder.trainable_weights, grads):
        assert grad is not None, weight.path
        assert np.all(np.isfinite(grad.numpy())), weight.path
        assert np.any(grad.numpy() != 0.0), weight.path


def test_graph_pooling_with_unknown_node_count():
    layer = dl.GraphPooling(K, "attention")

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 2]),
            tf.TensorSpec([None, None], tf.bool),
        ]
    )
    def pool(h, mask):
        return layer(h, mask)

    h = _rng(13).normal(size=(1, 5, 2)).astype("float32")
    p, mask_out = pool(h, np.ones((1, 5), bool))
    assert p.shape == (1, 2, 2)
    np.testing.assert_array_equal(mask_out.numpy(), [[True, True]])


# ---------------------------------------------------------- serialisation
