"""Keras layers of DCGN, the deep convolutional graph network (paper section 3).

One DCGN level turns a graph of N nodes into a graph of ceil(N/K) nodes:

    p = GraphPooling(h)              eq. 4 (average) or eq. 5 (attention)
    c = NodeConvolution(h)           eq. 6, a K x D kernel with stride K
    A = NormalizedAdjacency(p)       eq. 1, normalised as in eq. 7
    h' = GraphPropagation(c, A)      eq. 7

`ShotLevel` is the shot-aided first level (eqs. 10-11) and `DCGNEncoder` stacks
the levels into a fixed-size video representation for the MoE head.

Masks: every layer takes a node mask [B, N] (bool, or float with 1 = real
node) and ignores padded nodes completely, so the values stored at padded
positions can be anything, even inf or NaN. Real nodes form no particular
pattern inside a layer (empty shots may sit anywhere), except in `ShotLevel`
and `DCGNEncoder`, whose frame masks are prefixes (the first num_frames
frames are real).

How the paper is read where it is open. The measurements behind each
choice are in docs/dcgn_learning.md.

* Node counts that K does not divide: the tail is padded with masked nodes
  up to a multiple of K; a window with at least one real node is a real node
  of the next level. Average pooling (eq. 4) divides by the real nodes of
  the window, so a partial tail window is the mean of what it holds.
* Attention pooling (eq. 5): "a weight alpha for each feature" reads a
  feature as a node's D-dimensional vector (the paper's usage in section 2):
  one weight per node of the window, softmax over its real nodes. Eq. 5's
  bias is left out: the softmax cancels it. per_feature=True gives the other
  reading, a softmax per dimension with a D x D kernel.
* Adjacency (eq. 1): A = max(cos, 0) with self-loops of weight 1, so every
  real node has degree >= 1, dissimilar nodes share no edge ("similar ones
  have edge connected"), and D^-1/2 A D^-1/2 has its eigenvalues in
  [-1, 1]. A zero vector is an isolated node; padded nodes have no edges.
* W in eq. 7 is the convolution kernel of eq. 6 (the paper writes W^l for
  both; a second weight would only multiply into the first); propagation
  adds a bias before sigma, as GCN does. `GraphPropagation(filters=...)`
  offers a separate weight.
* Shots (eq. 11): a fixed K x D kernel covers a shot of any length through
  the means of K equal sub-intervals with fractional edges (frame j covers
  [j, j+1)); a shot of K frames sees its frames one by one, a shorter one
  reuses them, an empty shot is a padded node. p1 is the shot mean of
  eq. 10 whatever the pooling mode.
* Encoder output: the last level's N_L nodes concatenated in order ("the
  last level feature vectors are concatenated"); N_L is static, from
  max_frames or the shot count (configs.DCGNConfig.level_nodes).

Propagation forms (`--dcgn_propagation`, `PROPAGATION_FORMS`):

* `paper`: eqs. 1 and 7 as printed, the cosine of the raw nodes and
  h = sigma(A_hat c W + b). Cosines of ReLU outputs are all positive and
  grow towards 1 level by level, so A tends to all ones and every node to
  the video's mean node (over-smoothing), and the activations shrink at
  each level.
* `layer_norm` (the default), two deviations against that: the cosine is
  taken between nodes centred on the mean of the graph's real nodes (a
  correlation: a node is joined to those more alike than the video's
  average pair), and each real node is layer-normalised after sigma, so
  every level hands on unit-scale features.
* `residual`: centred adjacency, h = sigma(A_hat c W + c W + b), no
  normalisation. Eq. 7 alone makes each node a similarity-weighted mean
  over the whole video, where its own weight is 1 / its degree, which
  blurs where in the video it sits; each node's own message keeps it.

Two deviations with shots only:

* Readout width: the shot level has m nodes where the frames' first level
  has max_frames / K, so at equal depth the shot path ends in fewer nodes;
  its last level gets filters * ceil(N_L(frames) / N_L(shots)) filters, so
  the video vector is at least as wide as without shots.
* Depth: a level whose input graph is one node has no edge and no window to
  pool; configs.DCGNConfig.check refuses such a configuration and names the
  levels that work.
"""

import keras
import tensorflow as tf

import configs

# How GraphPropagation normalises after sigma (None: not at all).
NORMALIZATIONS = (None, "node")
# --dcgn_propagation -> the level's choices (module docstring).
PROPAGATION_FORMS = {
    "layer_norm": dict(centre_adjacency=True, normalization="node", residual=False),
    "paper": dict(centre_adjacency=False, normalization=None, residual=False),
    "residual": dict(centre_adjacency=True, normalization=None, residual=True),
}


def _as_bool_mask(node_mask):
    """A bool [B, N] mask from a bool or 0/1 float mask."""
    if node_mask.dtype == tf.bool:
        return node_mask
    return tf.not_equal(node_mask, 0)


def _zero_padded(x, mask):
    """Zeroes padded nodes; tf.where (not a product) so inf/NaN garbage vanishes too."""
    return tf.where(mask[..., None], x, tf.zeros_like(x))


def _num_windows(num_nodes, kernel):
    """ceil(N / K), as a Python int when N is static."""
    if isinstance(num_nodes, int):
        return -(-num_nodes // kernel)
    return (num_nodes + kernel - 1) // kernel


def _static_or_dynamic(x, axis):
    static = x.shape[axis]
    return static if static is not None else tf.shape(x)[axis]


def _windows(x, mask, kernel):
    """Groups K consecutive nodes, padding the tail with masked zero nodes.

    x [B, N, D], mask bool [B, N] -> x [B, ceil(N/K), K, D], mask [B, ceil(N/K), K].
    """
    batch = tf.shape(x)[0]
    num_nodes = _static_or_dynamic(x, 1)
    num_out = _num_windows(num_nodes, kernel)
    pad = num_out * kernel - num_nodes
    x = tf.pad(_zero_padded(x, mask), [[0, 0], [0, pad], [0, 0]])
    mask = tf.pad(mask, [[0, 0], [0, pad]])
    x = tf.reshape(x, [batch, num_out, kernel, x.shape[-1]])
    mask = tf.reshape(mask, [batch, num_out, kernel])
    return x, mask


class GraphPooling(keras.layers.Layer):
    """Graph pooling over windows of K consecutive nodes (eqs. 4, 5).

    call(h, node_mask, return_attention=False):
      h [B, N, D], node_mask [B, N] -> p [B, ceil(N/K), D], mask_out bool
      [B, ceil(N/K)]; with return_attention=True also alpha [B, ceil(N/K), K, D]
      (attention mode only), which sums to 1 over each window's real nodes
      for every feature and is 0 at padded nodes. A window without a real
      node outputs zeros and is masked out.

    mode="average": mean over the window's real nodes (eq. 4).
    mode="attention": softmax over the window of the scores h W_att (eq. 5,
      whose bias cancels in the softmax). By default one weight per node
      (W_att [D, 1]; alpha [B, ceil(N/K), K, 1]); per_feature=True gives
      every feature its own weight (W_att [D, D]; alpha [B, ceil(N/K), K, D]).
    """

    MODES = ("average", "attention")

    def __init__(self, kernel, mode="average", per_feature=False, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if kernel < 1:
            raise ValueError(f"kernel must be >= 1, got {kernel}")
        self.kernel = int(kernel)
        self.mode = mode
        self.per_feature = bool(per_feature)

    def build(self, input_shape):
        if self.mode == "attention":
            dim = input_shape[-1]
            scores = dim if self.per_feature else 1
            self.attention_kernel = self.add_weight(
                name="attention_kernel",
                shape=(dim, scores),
                initializer="glorot_uniform",
            )

    def call(self, h, node_mask, return_attention=False):
        windows, window_mask = _windows(h, _as_bool_mask(node_mask), self.kernel)
        return self.pool_windows(windows, window_mask, return_attention)

    def pool_windows(self, windows, window_mask, return_attention=False):
        """call() on what _windows made of h (a DCGN level shares them)."""
        mask_out = tf.reduce_any(window_mask, axis=2)
        real = tf.cast(window_mask, windows.dtype)[..., None]
        if self.mode == "average":
            count = tf.reduce_sum(real, axis=2)
            p = tf.math.divide_no_nan(tf.reduce_sum(windows, axis=2), count)  # eq. 4
            alpha = None
        else:
            scores = tf.tensordot(windows, self.attention_kernel, axes=1)
            # Softmax over real nodes only: padded scores get the lowest value
            # so the max shift ignores them, and their exponentials are zeroed.
            scores = tf.where(
                window_mask[..., None],
                scores,
                tf.fill(tf.shape(scores), scores.dtype.min),
            )
            scores = scores - tf.reduce_max(scores, axis=2, keepdims=True)
            weights = tf.exp(scores) * real
            alpha = tf.math.divide_no_nan(
                weights, tf.reduce_sum(weights, axis=2, keepdims=True)
            )
            p = tf.reduce_sum(alpha * windows, axis=2)  # eq. 5
        if return_attention:
            if alpha is None:
                raise ValueError("return_attention needs mode='attention'")
            return p, mask_out, alpha
        return p, mask_out


class NodeConvolution(keras.layers.Layer):
    """Node convolution (eq. 6): c[i] = h[iK:(i+1)K] W, stride K.

    call(h, node_mask): h [B, N, D], node_mask [B, N] -> c [B, ceil(N/K), F].

    Padded nodes are zeroed first, so they contribute nothing; the tail is
    padded with zero nodes up to a multiple of K. The kernel is stored as
    [K, D, F], the layout (and initialisation) of a Conv1D kernel, and
    applied as one [B * ceil(N/K), K * D] x [K * D, F] product. Eq. 6 has no
    bias, so use_bias defaults to False.
    """

    def __init__(
        self,
        filters,
        kernel,
        use_bias=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel = int(kernel)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.conv_kernel = self.add_weight(
            name="conv_kernel",
            shape=(self.kernel, dim, self.filters),
            initializer=self.kernel_initializer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer="zeros"
            )

    def call(self, h, node_mask):
        windows, _ = _windows(h, _as_bool_mask(node_mask), self.kernel)
        return self.convolve_windows(windows)

    def convolve_windows(self, windows):
        """call() on what _windows made of h (a DCGN level shares them)."""
        flat = tf.reshape(
            windows,
            [
                tf.shape(windows)[0],
                _static_or_dynamic(windows, 1),
                self.kernel * windows.shape[-1],
            ],
        )
        weights = tf.reshape(self.conv_kernel, [-1, self.filters])
        c = tf.tensordot(flat, weights, axes=1)  # eq. 6
        if self.use_bias:
            c = c + self.bias
        return c


def cosine_adjacency(p, node_mask, epsilon=1e-6, centre=False):
    """Dense adjacency from cosine similarity (eq. 1), clamped at zero.

    p [B, N, D], node_mask [B, N] -> A [B, N, N], symmetric, entries in
    [0, 1], diagonal 1 at real nodes, zero rows and columns at padded nodes.
    A vector with norm below epsilon has cosine 0 with every node.
    centre=True: the cosine of p minus the mean of the graph's real nodes
    (see the module docstring for why DCGN levels use it).
    """
    mask = _as_bool_mask(node_mask)
    p = _zero_padded(p, mask)
    if centre:
        count = tf.reduce_sum(tf.cast(mask, p.dtype), axis=1, keepdims=True)
        mean = tf.math.divide_no_nan(
            tf.reduce_sum(p, axis=1, keepdims=True), count[..., None]
        )
        p = _zero_padded(p - mean, mask)
    # rsqrt of a clamped square norm keeps the gradient finite at zero vectors.
    squared_norm = tf.reduce_sum(tf.square(p), axis=-1, keepdims=True)
    unit = p * tf.math.rsqrt(tf.maximum(squared_norm, epsilon * epsilon))
    cosine = tf.matmul(unit, unit, transpose_b=True)  # eq. 1
    # A matmul need not round (i, j) and (j, i) alike; make A exactly symmetric.
    cosine = 0.5 * (cosine + tf.linalg.matrix_transpose(cosine))
    adjacency = tf.clip_by_value(cosine, 0.0, 1.0)
    adjacency = tf.linalg.set_diag(adjacency, tf.ones_like(adjacency[..., 0]))
    pairs = tf.logical_and(mask[:, :, None], mask[:, None, :])
    return tf.where(pairs, adjacency, tf.zeros_like(adjacency))


def normalize_adjacency(adjacency):
    """Symmetric normalisation D^-1/2 A D^-1/2 of eq. 7 (eq. 3's sqrt(D)).

    adjacency [B, N, N] with non-negative entries -> same shape. Nodes of
    degree 0 (padded) keep zero rows and columns.
    """
    degree = tf.reduce_sum(adjacency, axis=-1)
    inv_sqrt = tf.where(
        degree > 0, tf.math.rsqrt(tf.maximum(degree, 1e-12)), tf.zeros_like(degree)
    )
    # The outer product d_i d_j is exactly symmetric, so the result is too.
    scale = inv_sqrt[:, :, None] * inv_sqrt[:, None, :]
    return adjacency * scale


class NormalizedAdjacency(keras.layers.Layer):
    """Normalised cosine adjacency D^-1/2 A D^-1/2, A from eq. 1 (no weights).

    call(p, node_mask): p [B, N, D], node_mask [B, N] -> A_hat [B, N, N].
    See `cosine_adjacency` for the clamping, self-loops, centring and padded
    nodes.
    """

    def __init__(self, epsilon=1e-6, centre=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.centre = bool(centre)

    def call(self, p, node_mask):
        adjacency = cosine_adjacency(p, node_mask, self.epsilon, self.centre)
        return normalize_adjacency(adjacency)


class GraphPropagation(keras.layers.Layer):
    """Node feature propagation (eq. 7): h = sigma(A_hat c W + b).

    call(c, adjacency, node_mask): c [B, N, F_in], adjacency A_hat [B, N, N],
    node_mask [B, N] -> h [B, N, F], zero at padded nodes. F = filters, or
    F_in when filters is None: then W is the node convolution's kernel
    (already inside c) and only the bias is learnt here. normalization
    after sigma: "node" layer-normalises every real node over its F features
    (learnt scale and offset), None leaves h as it is. residual=True
    computes h = sigma(A_hat c W + c W + b).
    """

    def __init__(
        self,
        filters=None,
        activation="relu",
        use_bias=True,
        normalization=None,
        residual=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = None if filters is None else int(filters)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization={normalization!r}: use one of {NORMALIZATIONS}"
            )
        self.normalization = normalization
        self.residual = bool(residual)
        self.norm = None
        if normalization == "node":
            self.norm = keras.layers.LayerNormalization(name="norm")

    def build(self, input_shape):
        dim = input_shape[-1]
        if self.filters is not None:
            self.propagation_kernel = self.add_weight(
                name="propagation_kernel",
                shape=(dim, self.filters),
                initializer="glorot_uniform",
            )
            dim = self.filters
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(dim,), initializer="zeros")
        if self.norm is not None:
            self.norm.build(tuple(input_shape[:-1]) + (dim,))

    def call(self, c, adjacency, node_mask):
        mask = _as_bool_mask(node_mask)
        c = _zero_padded(c, mask)
        if self.filters is not None:
            c = tf.tensordot(c, self.propagation_kernel, axes=1)
        h = tf.matmul(adjacency, c)
        if self.residual:
            h = h + c  # each node's own message beside eq. 7's mean
        if self.use_bias:
            h = h + self.bias
        h = self.activation(h)  # eq. 7
        if self.norm is not None:
            h = self.norm(h)
        return _zero_padded(h, mask)


class _GraphLevel(keras.layers.Layer):
    """What every level shares: node convolution, adjacency, propagation.

    Subclasses make the pooled nodes p (the graph) and the convolved nodes c
    (the messages) and call `propagate`. centre_adjacency, normalization
    and residual are a propagation form's choices (PROPAGATION_FORMS; the
    defaults are `layer_norm`'s).
    """

    def __init__(
        self,
        filters,
        kernel,
        centre_adjacency=True,
        normalization="node",
        residual=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel = int(kernel)
        self.centre_adjacency = bool(centre_adjacency)
        self.normalization = normalization
        self.residual = bool(residual)
        self.convolution = NodeConvolution(filters, kernel, name="convolution")
        self.adjacency = NormalizedAdjacency(
            centre=self.centre_adjacency, name="adjacency"
        )
        self.propagation = GraphPropagation(
            normalization=self.normalization,
            residual=self.residual,
            name="propagation",
        )

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.convolution.build(input_shape)
        self.propagation.build(input_shape[:-1] + (self.filters,))

    def propagate(self, p, c, node_mask):
        """Eq. 7 over the graph of p: (h [B, M, filters], node_mask)."""
        adjacency = self.adjacency(p, node_mask)
        return self.propagation(c, adjacency, node_mask), node_mask


class DCGNLevel(_GraphLevel):
    """One DCGN level: pooling, node convolution, adjacency, propagation.

    call(h, node_mask): h [B, N, D], node_mask [B, N] ->
      (h_out [B, ceil(N/K), filters], mask_out bool [B, ceil(N/K)]).
    """

    def __init__(self, filters, kernel, pooling="average", **kwargs):
        super().__init__(filters, kernel, **kwargs)
        self.pooling = pooling
        self.graph_pooling = GraphPooling(kernel, pooling, name="pooling")

    def build(self, input_shape):
        super().build(input_shape)
        self.graph_pooling.build(tuple(input_shape))

    def call(self, h, node_mask):
        # Pooling and convolution read the same windows of K nodes: made once,
        # they cost one pass over the level's input instead of two.
        windows, window_mask = _windows(h, _as_bool_mask(node_mask), self.kernel)
        p, mask_out = self.graph_pooling.pool_windows(windows, window_mask)
        return self.propagate(p, self.convolution.convolve_windows(windows), mask_out)


def shot_weights(shot_boundaries, num_frames, max_frames, kernel):
    """Frame-averaging weights of the shots and of their K sub-intervals.

    shot_boundaries int [B, m+1] (s_0 = 0 <= ... <= s_m = num_frames),
    num_frames int [B], max_frames T (int or scalar tensor) ->
      mean_weights [B, m, T]: row t averages frames [s_t, s_{t+1}) (eq. 10);
      sub_weights [B, m, K, T]: row (t, k) averages sub-interval k of shot t,
        [s_t + kL/K, s_t + (k+1)L/K), frame j weighted by its overlap with it;
      shot_mask bool [B, m]: shot t is not empty.
    Boundaries are clipped to [0, num_frames], so padded frames get weight 0.
    """
    bounds = tf.cast(shot_boundaries, tf.float32)
    limit = tf.cast(num_frames, tf.float32)[:, None]
    bounds = tf.clip_by_value(bounds, 0.0, limit)
    start = bounds[:, :-1]
    end = tf.maximum(bounds[:, 1:], start)
    length = end - start
    shot_mask = length > 0
    frame = tf.cast(tf.range(max_frames), tf.float32)

    inside = tf.logical_and(frame >= start[..., None], frame < end[..., None])
    mean_weights = tf.math.divide_no_nan(tf.cast(inside, tf.float32), length[..., None])

    step = tf.cast(tf.range(kernel), tf.float32) / kernel
    low = start[..., None] + length[..., None] * step  # [B, m, K]
    high = start[..., None] + length[..., None] * (step + 1.0 / kernel)
    overlap = tf.nn.relu(
        tf.minimum(high[..., None], frame + 1.0) - tf.maximum(low[..., None], frame)
    )
    # Normalising by the summed overlap (not L/K) keeps each row an exact mean.
    sub_weights = tf.math.divide_no_nan(
        overlap, tf.reduce_sum(overlap, axis=-1, keepdims=True)
    )
    return mean_weights, sub_weights, shot_mask


class ShotLevel(_GraphLevel):
    """Shot-aided first level (eqs. 10, 11), then adjacency and propagation.

    call(frames, frame_mask, shot_boundaries):
      frames [B, T, D], frame_mask [B, T] (a prefix: the first num_frames
      frames), shot_boundaries int [B, m+1] ->
      (h [B, m, filters], shot_mask bool [B, m]).

    p1[t] is the mean of the frames [s_t, s_{t+1}) (eq. 10). c1[t] applies
    a K x D kernel to the means of K equal sub-intervals of shot t (eq. 11;
    see the module docstring and `shot_weights`). Empty shots are padded
    nodes. Both are matrix products with weights built from the boundaries,
    with no loop over videos or shots.
    """

    def shot_features(self, frames, frame_mask, shot_boundaries):
        """-> p1 [B, m, D] (eq. 10), sub-interval means [B, m*K, D], shot_mask [B, m]."""
        mask = _as_bool_mask(frame_mask)
        frames = _zero_padded(frames, mask)
        num_frames = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        mean_weights, sub_weights, shot_mask = shot_weights(
            shot_boundaries, num_frames, _static_or_dynamic(frames, 1), self.kernel
        )
        dtype = frames.dtype
        p = tf.matmul(tf.cast(mean_weights, dtype), frames)  # eq. 10
        batch, num_shots = tf.shape(sub_weights)[0], _static_or_dynamic(sub_weights, 1)
        sub_weights = tf.reshape(sub_weights, [batch, num_shots * self.kernel, -1])
        sub_means = tf.matmul(tf.cast(sub_weights, dtype), frames)
        return p, sub_means, shot_mask

    def call(self, frames, frame_mask, shot_boundaries):
        p, sub_means, shot_mask = self.shot_features(
            frames, frame_mask, shot_boundaries
        )
        sub_mask = tf.repeat(shot_mask, self.kernel, axis=1)
        c = self.convolution(sub_means, sub_mask)  # eq. 11
        return self.propagate(p, c, shot_mask)


class DCGNEncoder(keras.layers.Layer):
    """The DCGN stack: frames -> fixed-size video representation.

    DCGNEncoder(config: configs.DCGNConfig, max_frames): dcgn_levels levels of
    dcgn_filters filters, kernel dcgn_kernel, dcgn_pooling, dcgn_shots shots,
    dcgn_propagation (PROPAGATION_FORMS).

    call(frames, num_frames, shot_boundaries=None):
      frames [B, T, D], num_frames int [B], shot_boundaries int
      [B, num_shots+1] (needed when num_shots > 0, ignored otherwise) ->
      [B, N_L * filters], the last level's nodes concatenated in order,
      padded nodes zero. N_L = config.level_nodes(max_frames)[-1]. Frames are cut or zero-padded to max_frames so that N_L is
      static.

    num_shots = 0: `levels` DCGNLevels over the frames.
    num_shots = m > 0: a ShotLevel (m nodes) and levels - 1 DCGNLevels.
    """

    def __init__(self, config: configs.DCGNConfig, max_frames, **kwargs):
        super().__init__(**kwargs)
        config.check(max_frames)
        self.levels = config.dcgn_levels
        self.kernel = config.dcgn_kernel
        self.num_shots = config.dcgn_shots
        self.max_frames = int(max_frames)
        self.num_nodes = config.level_nodes(self.max_frames)[-1]
        # Every level has dcgn_filters filters but the last, which may have
        # more with shots ("Readout width" in the module docstring).
        widths = [config.dcgn_filters] * (self.levels - 1)
        widths.append(config.readout_filters(self.max_frames))
        self.filters = widths[-1]
        choices = PROPAGATION_FORMS[config.dcgn_propagation]
        self.shot_level = None
        if self.num_shots:
            self.shot_level = ShotLevel(
                widths.pop(0), self.kernel, **choices, name="shot_level"
            )
        first = self.levels - len(widths)
        self.graph_levels = [
            DCGNLevel(
                width, self.kernel, config.dcgn_pooling, **choices, name=f"level_{i}"
            )
            for i, width in enumerate(widths, first)
        ]

    def build(self, input_shape):
        shape = (None, self.max_frames, input_shape[-1])
        if self.shot_level is not None:
            self.shot_level.build(shape)
            shape = (None, self.num_shots, self.shot_level.filters)
        for level in self.graph_levels:
            level.build(shape)
            shape = (None, _num_windows(shape[1], self.kernel), level.filters)

    def _fit_length(self, frames):
        frames = frames[:, : self.max_frames]
        pad = self.max_frames - tf.shape(frames)[1]
        frames = tf.pad(frames, [[0, 0], [0, pad], [0, 0]])
        return tf.ensure_shape(frames, [None, self.max_frames, frames.shape[-1]])

    def call(self, frames, num_frames, shot_boundaries=None):
        frames = self._fit_length(frames)
        num_frames = tf.cast(tf.reshape(num_frames, [-1]), tf.int32)
        mask = tf.range(self.max_frames)[None, :] < num_frames[:, None]
        h = frames
        if self.shot_level is not None:
            if shot_boundaries is None:
                raise ValueError(
                    f"DCGNEncoder(num_shots={self.num_shots}) needs shot_boundaries"
                )
            shot_boundaries = tf.ensure_shape(
                shot_boundaries, [None, self.num_shots + 1]
            )
            h, mask = self.shot_level(h, mask, shot_boundaries)
        for level in self.graph_levels:
            h, mask = level(h, mask)
        return tf.reshape(h, [-1, self.num_nodes * self.filters])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_nodes * self.filters)
