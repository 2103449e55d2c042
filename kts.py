"""Kernel temporal segmentation (KTS): split a video's frames into shots.

Potapov et al. 2014, as used by DCGN (paper section 3.2, eqs. 8-9). numpy
only, so it runs offline and inside ``tf.py_function``; ``kts_graph`` holds
the TensorFlow twin for compiled graphs.

Objective
---------
Frames are L2-normalised (a zero frame stays zero) and compared with the
cosine kernel K(i, j) = <u_i, u_j>. The cost of a segment [a, b) is its
within-segment scatter in kernel space,

    v(a, b) = sum_{a<=t<b} K(t, t) - 1/(b - a) * sum_{a<=i,j<b} K(i, j),

read for every (a, b) off prefix sums of the Gram matrix, which is built
once. ``L_{m,n}`` is the smallest total cost over the segmentations of the n
frames into m non-empty shots, found exactly by a dynamic programme in
O(m n^2).

Conventions (also the layout of ``shot_boundaries`` in a batch)
---------------------------------------------------------------
* m shots are described by m + 1 boundaries
  ``s_0 = 0 <= s_1 <= ... <= s_m = n``; shot t covers frames [s_t, s_{t+1}).
* n >= m: every shot is non-empty (strictly increasing boundaries).
* n < m: one shot per frame, then empty trailing shots that start at n:
  ``[0, 1, ..., n, n, ..., n]``. n == 0 gives all zeros.
* Ties go to the smaller index: among optimal segmentations the one whose
  boundary vector (s_1, ..., s_{m-1}) is lexicographically smallest is
  returned. The programme runs over suffixes, so choosing the smallest
  minimising split at each step, front to back, yields exactly that one.
* Constant videos (all frames equal, or all zero): every segmentation costs
  0, so the tie rule gives m - 1 single-frame shots followed by one shot
  holding the rest: ``[0, 1, 2, ..., m - 1, n]``.

Exact arithmetic, so that ties are real ties
--------------------------------------------
Plain floating-point prefix sums turn equal costs into values that differ in
the last bits, and the tie rule then depends on rounding noise (and differs
between numpy and TensorFlow). Here every quantity is an integer held
exactly in float64:

1. normalised frames are rounded to multiples of 2**-24 (``FEATURE_BITS``);
   the Gram entries are then integers below 2**50 in units of 2**-48 and
   are exact whatever order a BLAS sums in;
2. the Gram matrix is rounded to units of 2**-r, r = min(48, 50 - 2*bits(n))
   (bits(n) = ``int(n).bit_length()``), small enough that every prefix sum
   and every difference of them stays below 2**53 (r = 32 at n = 300,
   i.e. a resolution of 2.3e-10 on costs that are O(1) per frame);
3. each segment cost is rounded to an integer number of 2**-r units, so all
   sums in the dynamic programme are exact.

The rounding perturbs costs by far less than any real difference between
segmentations. A segmentation's cost is then one exact number whatever the
order of summation, ties are exact equalities of these rounded costs, and
numpy and TensorFlow (``kts_graph``) agree bit for bit. Costs that are equal
as real numbers stay equal after rounding when they are made of the same
segment costs or of whole units (constant runs, repeated or zero frames,
mirrored patterns); sums of different fractions (1/3 + 1/3 + 1/3 against
1) can differ by a unit of 2**-r, and then the rounded costs decide, still
deterministically. Inputs must be finite.

Automatic number of shots (paper eq. 8)
---------------------------------------
``auto_shot_boundaries`` minimises J(m) = L_{m,n} + C * g(m, n) with
g(m, n) = m (log(n / m) + 1), the penalty weight C given as ``penalty``.

One shot per frame has L = 0, so J(n) = C * n, and a segmentation into m
shots beats it only if L_{m,n} < C * (n - g(m, n)). With the cosine kernel
a frame adds at most 1 to the scatter, so L_{1,n} <= n, and
C > n / (n - log(n) - 1) (1.03 at n = 200) rules one-shot-per-frame out
entirely. Below that, noisy frames (a large per-frame within-shot scatter)
put every frame in its own shot. Potapov's reference code divides the
objective by n and writes the penalty as vmax * g / (2n), i.e. C = vmax / 2,
and vmax = 1 (C = 0.5) on the whitened YouTube-8M frame features falls into
that trap; how many shots each C gives on real videos is in
docs/benchmarks.md ("KTS penalty on real videos").

Picking C: a real cut between shots of a and b frames with kernel means
mu_a, mu_b lowers L by ab / (a + b) * ||mu_a - mu_b||^2 and costs about
C * log(n / m) of penalty, so C must stay well below that drop; and it must
stay above L_{m,n} / (n - g(m, n)) for the m you would accept (read L_{m,n}
off a fixed-m run). C = 1 (the default) is safe from the trap in practice
and finds clean cuts (tested on planted shots).

Cuts chosen by eq. (8), for DCGN's first level
----------------------------------------------
DCGN needs a set number of shots, but fixed-m KTS asked for more shots than
a video has splits its noisy frames into shots of their own.
``shot_boundaries(x, m, penalty=C)`` with C > 0 takes the cuts of eq. (8)
among at most m shots (``auto_shot_boundaries``), which exist only where
the frames change, and halves the longest shots until there are m
(``split_longest``); C = 0 is the exact fixed-m optimum. In a batch, a
video shorter than the model's max_frames gets proportionally fewer shots
(``shots_for_length``). Their measured effect is in docs/dcgn_learning.md.
"""

import threading

import numpy as np

# Normalised frames are rounded to integer multiples of 2**-FEATURE_BITS.
FEATURE_BITS = 24
# Units of the exact Gram matrix of the rounded frames: 2**-_GRAM_BITS.
_GRAM_BITS = 2 * FEATURE_BITS
# Rows of the min-plus table handled per numpy call.
_ROW_BLOCK = 128


def cost_bits(num_frames):
    """Resolution r of the costs of a video with ``num_frames`` frames.

    Costs are integers in units of 2**-r; r = min(48, 50 - 2 * bits(n)) keeps
    every prefix sum of an n x n Gram matrix with entries <= 1 (and every
    sum or difference of two of them) below 2**53, so exact in float64.
    """
    return min(_GRAM_BITS, 50 - 2 * int(num_frames).bit_length())


class _Scratch(threading.local):
    """Work arrays kept per thread and reused from call to call.

    A fresh n x n float64 array is larger than malloc's mmap threshold, so
    every call would fault its pages in anew: for a 300-frame video that cost
    more than all the arithmetic outside the Gram product
    (benchmarks/bench_kts.py). What a function returns is never scratch.
    """

    def __init__(self):
        super().__init__()
        self._arrays = {}

    def array(self, name, shape, dtype=np.float64):
        """A C-contiguous [shape] array with arbitrary contents."""
        size = int(np.prod(shape))
        flat = self._arrays.get(name)
        if flat is None or flat.size < size or flat.dtype != dtype:
            flat = self._arrays[name] = np.empty(size, dtype)
        return flat[:size].reshape(shape)


_SCRATCH = _Scratch()


# (length, invalid) of the longest video so far; a shorter video's are its
# top-left corner, so one read-only table serves every length.
_LENGTHS = (np.ones((1, 1)), np.ones((1, 1), bool))


def _segment_lengths(n):
    """(length, invalid), read-only [n+1, n+1]: length[a, b] = b - a where
    b > a and 1 elsewhere (a safe divisor); invalid = b <= a."""
    global _LENGTHS
    length, invalid = _LENGTHS
    if length.shape[0] <= n:
        idx = np.arange(n + 1, dtype=np.float64)
        length = np.subtract.outer(-idx, -idx)
        invalid = length <= 0
        length[invalid] = 1.0
        length.flags.writeable = False
        invalid.flags.writeable = False
        _LENGTHS = (length, invalid)  # one assignment: threads see either pair
    return length[: n + 1, : n + 1], invalid[: n + 1, : n + 1]


def quantised_frames(features, out=None):
    """L2-normalise frames and round them to multiples of 2**-FEATURE_BITS.

    Args:
      features: float array [n, D].
      out: float64 [n, D] to write into, or None for a new array.
    Returns:
      float64 [n, D] of integers (the frames in units of 2**-FEATURE_BITS);
      a zero frame stays zero.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be [n, D], got shape {features.shape}")
    x = np.empty(features.shape) if out is None else out
    x[...] = features  # float64 from here on, worked on in place
    norm = np.sqrt(np.einsum("td,td->t", x, x))
    # One scale per frame; kts_graph applies the identical operations.
    scale = np.zeros_like(norm)
    np.divide(float(2**FEATURE_BITS), norm, out=scale, where=norm > 0)
    x *= scale[:, None]
    return np.rint(x, out=x)


def _unit_costs(features):
    """Segment costs as exact integers in units of 2**-r.

    Args:
      features: float array [n, D].
    Returns:
      (cost, r): cost float64 [n+1, n+1] with cost[a, b] = scatter of frames
      [a, b) for a < b, and +inf where b <= a (not a non-empty segment);
      r from ``cost_bits(n)``. cost is this thread's scratch: valid until
      the next call.
    """
    features = np.asarray(features)
    n = features.shape[0]
    q = quantised_frames(features, out=_SCRATCH.array("frames", features.shape))
    r = cost_bits(n)
    # In-place steps throughout, into scratch: every value is an exact
    # integer, so the order of the operations does not change any result.
    # exact: integers below 2**50 in units of 2**-48
    gram = np.matmul(q, q.T, out=_SCRATCH.array("gram", (n, n)))
    gram *= 2.0 ** (r - _GRAM_BITS)
    np.rint(gram, out=gram)
    diag_prefix = np.zeros(n + 1)
    np.cumsum(np.diagonal(gram), out=diag_prefix[1:])
    cost = _SCRATCH.array("cost", (n + 1, n + 1))
    cost[0] = 0.0
    cost[1:, 0] = 0.0
    inner = cost[1:, 1:]
    np.cumsum(gram, axis=0, out=inner)
    np.cumsum(inner, axis=1, out=inner)
    sq = np.diagonal(cost).copy()
    # Kernel summed over the block [a, b) x [a, b); the prefix is symmetric.
    cost *= -2.0
    cost += sq[None, :]
    cost += sq[:, None]
    # eq. (9) times (b - a): v(a, b) (b - a) = (b - a) sum K(t, t) - block sum
    length, invalid = _segment_lengths(n)
    term = _SCRATCH.array("term", (n + 1, n + 1))
    np.subtract.outer(-diag_prefix, -diag_prefix, out=term)
    term *= length
    np.subtract(term, cost, out=cost)
    cost /= length
    np.rint(cost, out=cost)
    # The rounded Gram matrix is not exactly positive semi-definite.
    np.maximum(cost, 0.0, out=cost)
    np.copyto(cost, np.inf, where=invalid)
    return cost, r


def segment_costs(features):
    """Within-segment kernel scatter v(a, b) of every segment (paper eq. 9).

    Args:
      features: float array [n, D].
    Returns:
      float64 [n+1, n+1]: [a, b] is the scatter of frames [a, b) for a < b
      (the rounded values the dynamic programme uses), 0 on the diagonal
      (empty segment) and +inf below it.
    """
    cost, r = _unit_costs(features)
    n = cost.shape[0] - 1
    cost = np.ldexp(cost, -r)
    cost[np.arange(n + 1), np.arange(n + 1)] = 0.0
    return cost


def _suffix_programme(cost, max_shots, first_row_only_for_max):
    """Min-plus dynamic programme over suffixes.

    best_k[i] = min_{j > i} cost[i, j] + best_{k-1}[j], best_0 = 0 at n only,
    is the optimal cost of splitting frames [i, n) into k non-empty shots;
    pointer[k-1, i] is the smallest minimising j.

    Args:
      cost: float64 [n+1, n+1] exact integer costs, +inf where j <= i.
      max_shots: K >= 1, at most n.
      first_row_only_for_max: if true, only the rows a K-shot segmentation
        from frame 0 can visit are computed (fixed-m mode); otherwise every
        k is solved from frame 0 too (automatic mode).
    Returns:
      (pointer int64 [K, n+1], best_at_0 float64 [K+1]) where best_at_0[k]
      is the optimal cost of k shots over the whole video (L_{k,n}, in
      units); entries of rows that were not computed are meaningless.
    """
    n = cost.shape[0] - 1
    best = np.full(n + 1, np.inf)
    best[n] = 0.0
    pointer = np.zeros((max_shots, n + 1), dtype=np.int64)
    best_at_0 = np.full(max_shots + 1, np.inf)
    buffer = _SCRATCH.array("programme", (n * n,))
    for k in range(1, max_shots + 1):
        # Rows: a suffix [i, n) needs k frames; in fixed-m mode it is reached
        # after max_shots - k non-empty shots. Columns: best_{k-1}[j] is
        # finite only for j <= n - k + 1.
        lo = max_shots - k if first_row_only_for_max else 0
        # The last fixed-m step only needs the whole video, row 0.
        hi = 0 if first_row_only_for_max and k == max_shots else n - k
        stop = n - k + 2
        new_best = np.full(n + 1, np.inf)
        # Row blocks skip most of the +inf lower triangle (j <= i).
        for start in range(lo, hi + 1, _ROW_BLOCK):
            end = min(start + _ROW_BLOCK, hi + 1)
            rows, cols = end - start, stop - start - 1
            values = buffer[: rows * cols].reshape(rows, cols)
            np.add(
                cost[start:end, start + 1 : stop],
                best[None, start + 1 : stop],
                out=values,
            )
            # argmin returns the first minimum: the smallest split index.
            arg = np.argmin(values, axis=1)
            new_best[start:end] = values[np.arange(rows), arg]
            pointer[k - 1, start:end] = arg + start + 1
        best = new_best
        best_at_0[k] = best[0]
    return pointer, best_at_0


def _trace(pointer, num_shots, n, total_shots):
    """Boundaries [total_shots + 1] of the optimal num_shots-shot split, padded."""
    bounds = np.full(total_shots + 1, n, dtype=np.int32)
    bounds[0] = 0
    s = 0
    for t in range(num_shots):
        s = int(pointer[num_shots - t - 1, s])
        bounds[t + 1] = s
    return bounds


def shot_boundaries(features, num_shots, penalty=0.0):
    """KTS with a fixed number of shots m (paper eqs. 8-9).

    penalty = 0: the exact minimum of L_{m,n} over m-shot segmentations, the
    paper's fixed-m reading. penalty = C > 0: the cuts are those of eq. (8)
    with at most m shots (``auto_shot_boundaries``), and the longest shots
    are then halved until there are m (``split_longest``), so every video
    still has m shots but a cut is only placed where the penalty says the
    frames change; see "Cuts chosen by eq. (8)" in the module docstring.

    Args:
      features: float array [n, D], the video's real frames.
      num_shots: m >= 1.
      penalty: C >= 0 of eq. (8).
    Returns:
      int32 [m + 1] boundaries, conventions in the module docstring: start 0,
      end n, strictly increasing for n >= m; for n < m, one shot per frame
      then empty shots at n; smallest index on ties.
    """
    m = int(num_shots)
    if m < 1:
        raise ValueError(f"num_shots must be >= 1, got {num_shots}")
    if penalty < 0:
        raise ValueError(f"penalty must be >= 0, got {penalty}")
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be [n, D], got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return np.zeros(m + 1, dtype=np.int32)
    k = min(m, n)
    if penalty > 0:
        cuts = auto_shot_boundaries(x, max_shots=k, penalty=penalty)
        bounds = np.full(m + 1, n, dtype=np.int32)
        bounds[: k + 1] = split_longest(cuts, k)
        return bounds
    cost, _ = _unit_costs(x)
    pointer, _ = _suffix_programme(cost, k, first_row_only_for_max=True)
    return _trace(pointer, k, n, m)


def split_longest(bounds, num_shots):
    """Halves the longest shot (the first of equal ones) until there are m.

    Args:
      bounds: int array [k + 1], strictly increasing boundaries.
      num_shots: m, at least k and at most the number of frames.
    Returns:
      int32 [m + 1]; a shot of length l becomes [s, s + l // 2) and the rest.
    """
    out = [int(b) for b in bounds]
    while len(out) - 1 < num_shots:
        lengths = np.diff(out)
        i = int(np.argmax(lengths))  # argmax returns the first maximum
        out.insert(i + 1, out[i] + int(lengths[i]) // 2)
    return np.asarray(out, dtype=np.int32)


def kts_penalty(num_shots, num_frames):
    """g(m, n) = m (log(n / m) + 1), the penalty of paper eq. 8."""
    m = np.asarray(num_shots, dtype=np.float64)
    return m * (np.log(num_frames / m) + 1.0)


def auto_shot_boundaries(features, max_shots=None, penalty=1.0, min_shots=1):
    """KTS choosing the number of shots (paper eq. 8).

    Picks m in [min_shots, max_shots] minimising
    J(m) = L_{m,n} + penalty * g(m, n); one dynamic programme up to max_shots
    yields every L_{m,n}. Equal J goes to the smaller m. See the module
    docstring for choosing ``penalty`` (C) and the trap of a small C.

    Args:
      features: float array [n, D].
      max_shots: largest m considered, default n (O(n^3) time then).
      penalty: C >= 0.
      min_shots: smallest m considered.
    Returns:
      int32 [m + 1] boundaries of the chosen m (fixed-m conventions);
      [0, 0] for an empty video.
    """
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be [n, D], got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return np.zeros(2, dtype=np.int32)
    top = n if max_shots is None else max(1, min(int(max_shots), n))
    low = max(1, min(int(min_shots), top))
    cost, r = _unit_costs(x)
    pointer, best_at_0 = _suffix_programme(cost, top, first_row_only_for_max=False)
    shots = np.arange(low, top + 1)
    # eq. (8): J_{m,n} = L_{m,n} + C g(m, n)
    objective = np.ldexp(best_at_0[low:], -r) + penalty * kts_penalty(shots, n)
    m = int(shots[np.argmin(objective)])
    return _trace(pointer, m, n, m)


def shots_for_length(num_shots, num_frames, full_length):
    """Shots of a video of num_frames frames when full_length frames get m.

    ceil(m n / T): every video's shots span about T / m frames, whatever its
    length. A fixed m for all lengths would make a shot of a 30-frame video a
    tenth as long as one of a 300-frame video, and the levels above would
    see another time scale in every video (docs/dcgn_learning.md).
    """
    return min(num_shots, -(-num_shots * num_frames // full_length))


def batch_shot_boundaries(
    video_matrix, num_frames, num_shots, penalty=0.0, full_length=None
):
    """KTS over a padded batch; only the real frames are segmented.

    A video of full_length frames (default T) gets m shots; a shorter one
    ``shots_for_length(m, n_b, full_length)`` shots, then empty shots at n_b.

    Args:
      video_matrix: float array [B, T, D].
      num_frames: int array [B], clipped to [0, T].
      num_shots: m >= 1.
      penalty: C >= 0, as in ``shot_boundaries``.
      full_length: the length that gets m shots (a model's max_frames, when
        the batch holds shorter clips such as segments).
    Returns:
      int32 [B, m + 1]: row b starts with
      ``shot_boundaries(video_matrix[b, :n_b], m_b, penalty)`` and is padded
      with n_b.
    """
    videos = np.asarray(video_matrix)
    if videos.ndim != 3:
        raise ValueError(f"video_matrix must be [B, T, D], got {videos.shape}")
    full_length = full_length or videos.shape[1]
    lengths = np.clip(
        np.asarray(num_frames).astype(np.int64).reshape(-1), 0, videos.shape[1]
    )
    if lengths.shape[0] != videos.shape[0]:
        raise ValueError("num_frames must have one entry per video")
    out = np.zeros((videos.shape[0], int(num_shots) + 1), dtype=np.int32)
    for b, n in enumerate(lengths):
        shots = shots_for_length(int(num_shots), int(n), full_length)
        if shots:
            out[b] = n
            out[b, : shots + 1] = shot_boundaries(videos[b, :n], shots, penalty)
    return out
