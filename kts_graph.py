"""Kernel temporal segmentation as TensorFlow ops (paper eqs. 8 and 9).

For compiled models and exported SavedModels, where ``tf.py_function`` is
not allowed. Same objective, exact integer arithmetic, conventions and tie
rule as ``kts`` (see its module docstring), so it returns the same
boundaries as ``kts.batch_shot_boundaries``; ``kts`` is imported only for
its constants.
"""

import tensorflow as tf

import kts

# n < 2**_MAX_LENGTH_BITS frames; far beyond what an n x n table fits in.
_MAX_LENGTH_BITS = 31


def _power_of_two(exponent):
    """2.0 ** exponent as float64, built from its bits so it is exact.

    Args:
      exponent: int tensor, any shape, values in [-1022, 1023].
    """
    biased = tf.cast(exponent, tf.int64) + 1023
    return tf.bitcast(
        tf.bitwise.left_shift(biased, tf.constant(52, tf.int64)), tf.float64
    )


def _unit_costs(video_matrix, num_frames):
    """Batched segment costs, the integers of ``kts._unit_costs``.

    Args:
      video_matrix: float64 [B, T, D].
      num_frames: int32 [B], already clipped to [0, T].
    Returns:
      (cost, r): cost float64 [B, T+1, T+1], cost[b, i, j] = scatter of
      frames [i, j) of video b in units of 2**-r_b for i < j <= n_b, +inf
      elsewhere; r int32 [B].
    """
    t = tf.shape(video_matrix)[1]
    mask = tf.sequence_mask(num_frames, t, dtype=tf.float64)
    x = video_matrix * mask[:, :, None]
    norm = tf.sqrt(tf.einsum("btd,btd->bt", x, x))
    # Identical operations to kts.quantised_frames: one scale per frame.
    scale = tf.math.divide_no_nan(tf.constant(2.0**kts.FEATURE_BITS, tf.float64), norm)
    q = tf.math.rint(x * scale[:, :, None])
    gram = tf.linalg.matmul(q, q, transpose_b=True)  # exact integers

    powers = tf.bitwise.left_shift(1, tf.range(_MAX_LENGTH_BITS))
    bits = tf.reduce_sum(
        tf.cast(num_frames[:, None] >= powers[None, :], tf.int32), axis=1
    )
    r = tf.minimum(2 * kts.FEATURE_BITS, 50 - 2 * bits)  # kts.cost_bits
    gram = tf.math.rint(gram * _power_of_two(r - 2 * kts.FEATURE_BITS)[:, None, None])

    prefix = tf.cumsum(tf.cumsum(gram, axis=1), axis=2)
    prefix = tf.pad(prefix, [[0, 0], [1, 0], [1, 0]])
    diag_prefix = tf.pad(tf.cumsum(tf.linalg.diag_part(gram), axis=1), [[0, 0], [1, 0]])
    idx = tf.range(t + 1)
    length = tf.cast(idx[None, :] - idx[:, None], tf.float64)
    sq = tf.linalg.diag_part(prefix)
    block = sq[:, None, :] + sq[:, :, None] - 2.0 * prefix
    # eq. (9) times (b - a): v(a, b) (b - a) = (b - a) sum K(t, t) - block sum
    numer = length[None] * (diag_prefix[:, None, :] - diag_prefix[:, :, None]) - block
    positive = length > 0
    cost = tf.math.rint(numer / tf.where(positive, length, 1.0)[None])
    # The rounded Gram matrix is not exactly positive semi-definite.
    cost = tf.maximum(cost, 0.0)
    valid = positive[None] & (idx[None, None, :] <= num_frames[:, None, None])
    return tf.where(valid, cost, tf.constant(float("inf"), tf.float64)), r


def shot_boundaries_tf(
    video_matrix, num_frames, num_shots, penalty=0.0, full_length=None
):
    """KTS over a padded batch, as TensorFlow ops.

    Equal to ``kts.batch_shot_boundaries`` with the same penalty: video b
    gets m_b = ``kts.shots_for_length(m, n_b, T)`` shots; with penalty 0
    they are the exact optimum of the kernel scatter (paper eq. 9) over its
    first n_b frames, boundaries s_0 = 0 <= ... <= s_{m_b} = n_b, strictly
    increasing when n_b >= m_b, one shot per frame when n_b < m_b, padded
    with n_b, lexicographically smallest boundaries among ties. Traces
    inside tf.function with unknown batch size and length. Memory is
    O(B T^2) float64, time O(m B T^2).

    Args:
      video_matrix: float tensor [B, T, D].
      num_frames: int tensor [B], clipped to [0, T].
      num_shots: Python int m >= 1 (static).
      penalty: Python float C >= 0 of eq. (8) (see ``kts.shot_boundaries``).
      full_length: Python int, the length that gets m shots (default T).
    Returns:
      int32 tensor [B, m + 1].
    """
    m = int(num_shots)
    if m < 1:
        raise ValueError(f"num_shots must be >= 1, got {num_shots}")
    if penalty < 0:
        raise ValueError(f"penalty must be >= 0, got {penalty}")
    x = tf.cast(video_matrix, tf.float64)
    shape = tf.shape(x)
    batch, t = shape[0], shape[1]
    n = tf.clip_by_value(tf.reshape(tf.cast(num_frames, tf.int32), [-1]), 0, t)
    cost, r = _unit_costs(x, n)

    idx = tf.range(t + 1)
    inf = tf.constant(float("inf"), tf.float64)
    # best[b, i]: optimal cost of frames [i, n_b) in k non-empty shots.
    best = tf.where(idx[None, :] == n[:, None], tf.constant(0.0, tf.float64), inf)
    pointers, whole_video_costs = [], []
    for _ in range(m):
        values = cost + best[:, None, :]
        best = tf.reduce_min(values, axis=2)
        whole_video_costs.append(best[:, 0])
        # tf.argmin does not promise which of equal minima it returns.
        pointers.append(
            tf.reduce_min(
                tf.where(values == best[:, :, None], idx[None, None, :], t + 1), axis=2
            )
        )
    pointer = tf.stack(pointers, axis=0)  # [m, B, T+1]; [k-1] for k shots

    # kts.shots_for_length: ceil(m n / T) shots, at most one per frame.
    full = t if full_length is None else full_length
    shots = tf.minimum(n, tf.minimum(m, (m * n + full - 1) // full))
    if penalty > 0:
        chosen = _shots_by_penalty(tf.stack(whole_video_costs, 1), r, n, shots, penalty)
    else:
        chosen = shots
    rows = tf.range(batch)
    start = tf.zeros_like(n)
    bounds = [start]
    for step in range(m):
        k = chosen - step
        nxt = tf.gather_nd(pointer, tf.stack([tf.maximum(k - 1, 0), rows, start], 1))
        start = tf.where(k >= 1, nxt, n)
        bounds.append(start)
    bounds = tf.stack(bounds, axis=1)
    if penalty > 0:
        bounds = _split_longest(bounds, shots)
    return bounds


def _shots_by_penalty(whole_video_costs, r, n, shots, penalty):
    """The m of eq. (8) per video, as ``kts.auto_shot_boundaries``.

    Args:
      whole_video_costs: float64 [B, M], [b, k - 1] = L_{k,n_b} in units of
        2**-r_b (+inf where k > n_b).
      r: int32 [B]; n: int32 [B] frames; shots: int32 [B], the most allowed.
      penalty: C > 0.
    Returns:
      int32 [B]: the smallest k in [1, shots_b] minimising
      L_{k,n} + C g(k, n); 0 for an empty video.
    """
    top = tf.shape(whole_video_costs)[1]
    k = tf.cast(tf.range(1, top + 1), tf.float64)[None, :]
    frames = tf.cast(n, tf.float64)[:, None]
    # eq. (8): J_{m,n} = L_{m,n} + C g(m, n), g(m, n) = m (log(n / m) + 1)
    objective = whole_video_costs * _power_of_two(-r)[:, None] + penalty * (
        k * (tf.math.log(frames / k) + 1.0)
    )
    allowed = tf.range(1, top + 1)[None, :] <= shots[:, None]
    objective = tf.where(allowed, objective, tf.constant(float("inf"), tf.float64))
    best = tf.reduce_min(objective, axis=1, keepdims=True)
    first = tf.reduce_min(
        tf.where(objective == best, tf.range(1, top + 1)[None, :], top + 1), axis=1
    )
    return tf.where(n > 0, first, 0)


def _split_longest(bounds, shots):
    """``kts.split_longest`` on a padded batch until each video has ``shots``.

    Args:
      bounds: int32 [B, m + 1], k_b <= shots_b real shots then padding at n_b.
      shots: int32 [B], min(m, n_b).
    """
    m = bounds.shape[1] - 1
    position = tf.range(m)[None, :]
    for _ in range(m):
        lengths = bounds[:, 1:] - bounds[:, :-1]
        count = tf.reduce_sum(tf.cast(lengths > 0, tf.int32), axis=1)
        longest = tf.reduce_max(lengths, axis=1, keepdims=True)
        i = tf.reduce_min(tf.where(lengths == longest, position, m), axis=1)
        start = tf.gather(bounds, i, batch_dims=1)
        cut = start + tf.gather(lengths, i, batch_dims=1) // 2
        # The last entry is padding (n_b) whenever a split is still needed.
        split = tf.sort(tf.concat([bounds[:, :-1], cut[:, None]], axis=1), axis=1)
        bounds = tf.where((count < shots)[:, None], split, bounds)
    return bounds
