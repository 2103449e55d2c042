"""Tests of kts (numpy) and kts_graph (TensorFlow) shot segmentation.

The reference is a brute-force search over every segmentation, in
lexicographic order of the split points, in two forms: over the rounded cost
table the programme uses (exact comparisons, so the tie rule is checked
bit for bit), and over scatters computed directly from the frames (an
independent check of the objective).
"""

import concurrent.futures
import glob
import os
import itertools
import functools

import numpy as np
import pytest
import tensorflow as tf

import kts
import kts_graph

DATA_GLOB = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "data", "frame2018", "*.tfrecord"
)
TOL = 1e-6


# ----------------------------------------------------------------- inputs


def random_video(rng, n, dim=8):
    return rng.normal(size=(n, dim))


def structured_video(rng, lengths, dim=16, noise=0.05):
    """Piecewise-constant frames plus noise; returns (frames, planted bounds)."""
    centres = rng.normal(size=(len(lengths), dim))
    frames = np.concatenate(
        [
            c + noise * rng.normal(size=(length, dim))
            for c, length in zip(centres, lengths)
        ]
    )
    return frames, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def two_symbol_video(rng, n):
    """Frames drawn from two orthogonal vectors: many exactly tied costs."""
    return np.eye(3)[rng.integers(0, 2, size=n)] * rng.uniform(0.5, 2.0, size=(n, 1))


def input_kinds(rng, n):
    kinds = {
        "random": random_video(rng, n),
        "structured": structured_video(
            rng,
            np.diff(np.unique(np.concatenate([[0, n], rng.integers(1, n, size=3)])))
            if n > 1
            else [1],
        )[0],
        "constant": np.tile(rng.normal(size=(1, 5)), (n, 1)),
        "two_symbol": two_symbol_video(rng, n),
    }
    return kinds


# ------------------------------------------------------------ brute force


def direct_scatter(frames, a, b):
    """Kernel scatter of frames [a, b) with the cosine kernel, from the frames."""
    x = np.asarray(frames, np.float64)[a:b]
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0.0)
    return float(np.sum((u - u.mean(axis=0)) ** 2))


def all_segmentations(n, m):
    """Every boundary vector of m non-empty shots of n frames, lexicographic."""
    for splits in itertools.combinations(range(1, n), m - 1):
        yield (0,) + splits + (n,)


def segmentation_cost(table, bounds):
    return sum(table[a, b] for a, b in zip(bounds[:-1], bounds[1:]))


def brute_force(table, n, m, tol=0.0):
    """(best cost, first boundaries within tol of it, second-best cost)."""
    found = [(segmentation_cost(table, s), s) for s in all_segmentations(n, m)]
    costs = np.array([c for c, _ in found])
    best = costs.min()
    first = next(s for c, s in found if c <= best + tol)
    others = costs[costs > best + tol]
    return best, np.array(first), (others.min() if others.size else np.inf)


def direct_table(frames):
    n = len(frames)
    table = np.full((n + 1, n + 1), np.inf)
    for a in range(n):
        for b in range(a + 1, n + 1):
            table[a, b] = direct_scatter(frames, a, b)
    return table


# ------------------------------------------------- numpy: exact optimum


@pytest.mark.parametrize("kind", ["random", "structured", "constant", "two_symbol"])
def test_matches_brute_force(kind):
    rng = np.random.default_rng(
        ["random", "structured", "constant", "two_symbol"].index(kind)
    )
    checked_unique = 0
    for n in range(1, 13):
        frames = input_kinds(rng, n)[kind]
        table = kts.segment_costs(frames)
        independent = direct_table(frames)
        for m in range(1, n + 1):
            got = kts.shot_boundaries(frames, m)
            assert got.dtype == np.int32 and got.shape == (m + 1,)
            # Same table, exact comparisons: the tie rule must agree exactly.
            best, first, _ = brute_force(table, n, m)
            np.testing.assert_array_equal(got, first, err_msg=f"{kind} n={n} m={m}")
            assert segmentation_cost(table, got) == best
            # Scatter from the frames: same optimum; same boundaries if unique.
            best_i, first_i, second_i = brute_force(independent, n, m, tol=TOL)
            assert abs(segmentation_cost(independent, got) - best_i) < TOL
            if second_i > best_i + 10 * TOL and kind != "two_symbol":
                np.testing.assert_array_equal(got, first_i)
                checked_unique += 1
            if kind == "constant":
                np.testing.assert_array_equal(got, first_i)
        for m in (n + 1, n + 3):
            # More shots than frames: the n-shot optimum (one frame each),
            # then empty shots starting at n.
            expected = np.concatenate([brute_force(table, n, n)[1], np.full(m - n, n)])
            np.testing.assert_array_equal(kts.shot_boundaries(frames, m), expected)
    if kind in ("random", "structured"):
        assert checked_unique > 60


def test_tie_rule_is_lexicographic_not_last_boundary_first():
    # Frames A B A over orthogonal unit vectors, 2 shots: splits at 1 and 2
    # both cost 1 (one mixed pair); the smaller index wins.
    a, b, c = np.eye(3)
    frames = np.stack([a, b, a])
    table = kts.segment_costs(frames)
    assert table[0, 1] + table[1, 3] == table[0, 2] + table[2, 3] == 1.0
    np.testing.assert_array_equal(kts.shot_boundaries(frames, 2), [0, 1, 3])
    # A B A C A B, 3 shots: [AB][ACA][B] and [ABA][C][AB] both cost 1 + 4/3.
    # Smallest first split gives (2, 5); smallest last split would give (3, 4).
    frames = np.stack([a, b, a, c, a, b])
    table = kts.segment_costs(frames)
    assert segmentation_cost(table, (0, 2, 5, 6)) == segmentation_cost(
        table, (0, 3, 4, 6)
    )
    assert brute_force(table, 6, 3)[0] == segmentation_cost(table, (0, 2, 5, 6))
    assert abs(segmentation_cost(table, (0, 2, 5, 6)) - 7 / 3) < TOL
    np.testing.assert_array_equal(kts.shot_boundaries(frames, 3), [0, 2, 5, 6])
    np.testing.assert_array_equal(
        kts_graph.shot_boundaries_tf(frames[None], [6], 3).numpy()[0], [0, 2, 5, 6]
    )


def test_short_and_empty_videos():
    rng = np.random.default_rng(1)
    for n in range(0, 6):
        frames = rng.normal(size=(n, 4))
        for m in range(max(n, 1), n + 4):
            got = kts.shot_boundaries(frames, m)
            expected = np.concatenate([np.arange(n + 1), np.full(m - n, n)])
            np.testing.assert_array_equal(got, expected)
            assert got.dtype == np.int32
    np.testing.assert_array_equal(
        kts.shot_boundaries(np.zeros((0, 7)), 3), [0, 0, 0, 0]
    )


def test_constant_and_zero_videos_layout():
    # Every split costs 0: m - 1 single-frame shots, then the rest.
    for frames in (np.tile([[0.3, -1.0, 2.0]], (20, 1)), np.zeros((20, 3))):
        assert np.all(np.isfinite(kts.segment_costs(frames)[np.triu_indices(21, 1)]))
        assert np.all(kts.segment_costs(frames)[np.triu_indices(21, 1)] == 0)
        for m in (1, 2, 5, 20):
            expected = np.concatenate([np.arange(m), [20]])
            np.testing.assert_array_equal(kts.shot_boundaries(frames, m), expected)


def test_scale_invariance_and_zero_frames():
    rng = np.random.default_rng(2)
    frames, _ = structured_video(rng, [5, 7, 4, 9])
    scaled = frames * rng.uniform(0.1, 10.0, size=(len(frames), 1))
    np.testing.assert_array_equal(
        kts.shot_boundaries(frames, 4), kts.shot_boundaries(scaled, 4)
    )
    # A zero frame normalises to zero; a run of them forms its own shot.
    with_zeros = np.concatenate([frames[:12], np.zeros((6, 16)), frames[12:]])
    np.testing.assert_array_equal(
        kts.shot_boundaries(with_zeros, 5), [0, 5, 12, 18, 22, 31]
    )


def test_structured_recovers_planted_boundaries():
    rng = np.random.default_rng(3)
    for _ in range(20):
        lengths = rng.integers(1, 25, size=rng.integers(2, 12))
        frames, planted = structured_video(rng, lengths, dim=32, noise=0.1)
        np.testing.assert_array_equal(
            kts.shot_boundaries(frames, len(lengths)), planted
        )


def batch_row(frames, num_shots, full_length, penalty=0.0):
    """A row of batch_shot_boundaries, built from shot_boundaries."""
    n = len(frames)
    shots = kts.shots_for_length(num_shots, n, full_length)
    row = np.full(num_shots + 1, n, np.int32)
    if shots:
        row[: shots + 1] = kts.shot_boundaries(frames, shots, penalty)
    return row


def test_shorter_videos_get_proportionally_fewer_shots():
    assert [kts.shots_for_length(8, n, 300) for n in (300, 299, 150, 100, 1, 0)] == [
        8,
        8,
        4,
        3,
        1,
        0,
    ]
    assert kts.shots_for_length(81, 20, 40) == 41  # one a frame, then empty
    rng = np.random.default_rng(14)
    videos = rng.normal(size=(2, 60, 4))
    got = kts.batch_shot_boundaries(videos, [60, 30], 6)
    np.testing.assert_array_equal(got[0], kts.shot_boundaries(videos[0], 6))
    np.testing.assert_array_equal(got[1, :4], kts.shot_boundaries(videos[1, :30], 3))
    np.testing.assert_array_equal(got[1, 4:], [30] * 3)


def test_batch_uses_only_real_frames():
    rng = np.random.default_rng(4)
    videos = rng.normal(size=(4, 30, 6))
    lengths = np.array([30, 17, 2, 0])
    got = kts.batch_shot_boundaries(videos, lengths, 5)
    assert got.shape == (4, 6) and got.dtype == np.int32
    noisy = videos.copy()
    for b, n in enumerate(lengths):
        noisy[b, n:] = rng.normal(size=(30 - n, 6)) * 100
        np.testing.assert_array_equal(got[b], batch_row(videos[b, :n], 5, 30))
    np.testing.assert_array_equal(kts.batch_shot_boundaries(noisy, lengths, 5), got)


# ---------------------------------------------------------- automatic mode


def test_auto_finds_planted_number_of_shots():
    rng = np.random.default_rng(5)
    for count in (1, 3, 6, 10):
        lengths = rng.integers(8, 40, size=count)
        frames, planted = structured_video(rng, lengths, dim=64, noise=0.1)
        got = kts.auto_shot_boundaries(frames, max_shots=20, penalty=1.0)
        np.testing.assert_array_equal(got, planted)


def test_auto_small_penalty_trap_matches_objective():
    # Orthogonal frames: k frames scatter k - 1, so L_{m,n} = n - m exactly,
    # and eq. 8 can be minimised by hand.
    n = 24
    frames = np.eye(n)
    table = kts.segment_costs(frames)
    assert all(table[a, b] == b - a - 1 for a in range(n) for b in range(a + 1, n + 1))
    for penalty in (0.25, 0.5, 1.0, 1.2, 2.0):
        m = np.arange(1, n + 1)
        expected_m = m[np.argmin(n - m + penalty * m * (np.log(n / m) + 1))]
        got = kts.auto_shot_boundaries(frames, penalty=penalty)
        assert len(got) - 1 == expected_m
        np.testing.assert_array_equal(got, kts.shot_boundaries(frames, expected_m))
    # C = vmax / 2 = 0.5 on frames noisier than that: every frame its own shot.
    np.testing.assert_array_equal(
        kts.auto_shot_boundaries(frames, penalty=0.5), np.arange(n + 1)
    )
    np.testing.assert_array_equal(kts.auto_shot_boundaries(frames, penalty=2.0), [0, n])


def test_split_longest_halves_the_first_longest_shot():
    np.testing.assert_array_equal(kts.split_longest([0, 10, 13], 2), [0, 10, 13])
    # 10, 3 -> 5, 5, 3 -> 2, 3, 5, 3 (the first of the equal fives)
    np.testing.assert_array_equal(kts.split_longest([0, 10, 13], 4), [0, 2, 5, 10, 13])
    np.testing.assert_array_equal(kts.split_longest([0, 4], 4), [0, 1, 2, 3, 4])


def test_penalised_shots_keep_planted_cuts_and_split_the_rest():
    rng = np.random.default_rng(12)
    for count in (1, 3, 6):
        lengths = rng.integers(8, 40, size=count)
        frames, planted = structured_video(rng, lengths, dim=64, noise=0.1)
        for m in (count, 8, 27):
            got = kts.shot_boundaries(frames, m, penalty=1.0)
            assert len(got) == m + 1 and np.all(np.diff(got) > 0)
            # eq. (8) finds the planted cuts; the other cuts only halve shots.
            assert set(planted) <= set(got)
            np.testing.assert_array_equal(got, kts.split_longest(planted, m))
    # Fixed-m KTS cuts noise into separate shots; eq. (8) with a penalty
    # leaves a shot of pure noise whole before halving the longest.
    noise = rng.normal(size=(60, 16))
    np.testing.assert_array_equal(
        kts.shot_boundaries(noise, 4, penalty=1.0), [0, 15, 30, 45, 60]
    )


def test_penalised_shots_follow_the_short_video_layout():
    frames = np.random.default_rng(13).normal(size=(3, 4))
    np.testing.assert_array_equal(
        kts.shot_boundaries(frames, 5, penalty=1.0), [0, 1, 2, 3, 3, 3]
    )
    np.testing.assert_array_equal(
        kts.shot_boundaries(np.zeros((0, 4)), 3, penalty=1.0), [0, 0, 0, 0]
    )
    with pytest.raises(ValueError, match="penalty"):
        kts.shot_boundaries(frames, 2, penalty=-1.0)


def test_auto_agrees_with_fixed_mode_costs():
    rng = np.random.default_rng(6)
    frames = rng.normal(size=(15, 5))
    table = kts.segment_costs(frames)
    optimum = {
        m: segmentation_cost(table, kts.shot_boundaries(frames, m))
        for m in range(1, 16)
    }
    for penalty in (0.0, 0.05, 0.2, 0.5):
        got = kts.auto_shot_boundaries(frames, penalty=penalty)
        m = len(got) - 1
        objective = {k: optimum[k] + penalty * kts.kts_penalty(k, 15) for k in optimum}
        assert objective[m] == min(objective.values())
        np.testing.assert_array_equal(got, kts.shot_boundaries(frames, m))
    assert len(kts.auto_shot_boundaries(frames, max_shots=4, penalty=0.0)) == 5
    np.testing.assert_array_equal(kts.auto_shot_boundaries(np.zeros((0, 3))), [0, 0])


# --------------------------------------------------------------- real data


def _read_videos(paths, max_frames=300):
    videos = []
    for path in paths:
        for record in tf.data.TFRecordDataset(path):
            context, lists = tf.io.parse_single_sequence_example(
                record,
                context_features={"id": tf.io.FixedLenFeature([], tf.string)},
                sequence_features={
                    name: tf.io.FixedLenSequenceFeature([], tf.string)
                    for name in ("rgb", "audio")
                },
            )
            parts = []
            for name in ("rgb", "audio"):
                raw = tf.io.decode_raw(lists[name], tf.uint8)[:max_frames]
                parts.append(
                    tf.cast(raw, tf.float32) * (4.0 / 255.0) + (4.0 / 512.0) - 2.0
                )
            videos.append(tf.concat(parts, axis=1).numpy())
    return videos


@pytest.fixture(scope="module")
def real_videos():
    paths = sorted(glob.glob(DATA_GLOB))
    assert len(paths) == 3
    videos = _read_videos(paths)
    assert len(videos) == 4 and all(v.shape[1] == 1152 for v in videos)
    return videos


def test_real_data_boundaries_valid_and_locally_optimal(real_videos):
    m = 32
    for frames in real_videos:
        n = len(frames)
        got = kts.shot_boundaries(frames, m)
        assert got.shape == (m + 1,) and got[0] == 0 and got[-1] == n
        assert np.all(np.diff(got) >= 0)
        if n >= m:
            assert np.all(np.diff(got) > 0)
        table = kts.segment_costs(frames)
        cost = segmentation_cost(table, got)
        uniform = np.linspace(0, n, m + 1).round().astype(int)
        assert cost <= segmentation_cost(table, uniform)
        # No single boundary moved by one frame does better; moving one
        # left never even ties (smaller index wins ties).
        for t in range(1, m):
            for step in (-1, 1):
                moved = got.copy()
                moved[t] += step
                if moved[t - 1] < moved[t] < moved[t + 1]:
                    if step < 0:
                        assert segmentation_cost(table, moved) > cost
                    else:
                        assert segmentation_cost(table, moved) >= cost


# ---------------------------------------------------------- TensorFlow twin


@functools.lru_cache(maxsize=None)
def compiled(num_shots, penalty=0.0):
    spec = [
        tf.TensorSpec([None, None, None], tf.float32),
        tf.TensorSpec([None], tf.int32),
    ]
    return tf.function(
        lambda v, n: kts_graph.shot_boundaries_tf(v, n, num_shots, penalty),
        input_signature=spec,
    )


def pad_batch(videos, length=None, rng=None):
    length = length or max(len(v) for v in videos)
    dim = videos[0].shape[1]
    batch = np.zeros((len(videos), length, dim), np.float32)
    if rng is not None:  # garbage past num_frames must be ignored
        batch = rng.normal(size=batch.shape).astype(np.float32) * 50
    for b, v in enumerate(videos):
        batch[b, : len(v)] = v
    return batch, np.array([len(v) for v in videos], np.int32)


def assert_graph_equals_numpy(videos, num_shots, rng, penalty=0.0):
    batch, lengths = pad_batch(videos, rng=rng)
    expected = kts.batch_shot_boundaries(batch, lengths, num_shots, penalty)
    got = compiled(num_shots, penalty)(batch, lengths)
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(got.numpy(), expected)
    return expected


@pytest.mark.parametrize("penalty", [0.0, 0.3, 1.0])
def test_graph_equals_numpy_on_small_inputs(penalty):
    rng = np.random.default_rng(7)
    videos = []
    for n in (1, 2, 3, 5, 8, 12, 0):
        for frames in input_kinds(rng, n).values() if n else [np.zeros((0, 8))]:
            padded = np.zeros((n, 16), np.float32)
            padded[:, : frames.shape[1]] = frames
            videos.append(padded)
    videos.append(structured_video(rng, [3, 9, 1, 6], dim=16)[0])
    a, b = np.eye(16)[:2]
    videos.append(np.stack([a, a, b, b, a, a]))
    longest = max(len(v) for v in videos)
    for m in (1, 3, 6, 14):
        expected = assert_graph_equals_numpy(videos, m, rng, penalty)
        for row, v in zip(expected, videos):
            np.testing.assert_array_equal(row, batch_row(v, m, longest, penalty))


def test_graph_equals_numpy_on_structured_and_constant():
    rng = np.random.default_rng(8)
    videos = [
        structured_video(rng, rng.integers(1, 15, size=8), dim=24)[0] for _ in range(4)
    ]
    videos += [np.tile(rng.normal(size=(1, 24)), (40, 1)), np.zeros((30, 24))]
    videos = [v.astype(np.float32) for v in videos]
    expected = assert_graph_equals_numpy(videos, 8, rng)
    # Constant frames: every split ties, so the smallest indices win.
    shots = kts.shots_for_length(8, 40, max(len(v) for v in videos))
    np.testing.assert_array_equal(
        expected[-2], np.concatenate([np.arange(shots), [40] * (9 - shots)])
    )


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_graph_equals_numpy_on_real_data(real_videos, penalty):
    rng = np.random.default_rng(9)
    batch, lengths = pad_batch(real_videos, length=300, rng=rng)
    # Clipped lengths and a truncated copy exercise padding on real frames.
    lengths[1] = min(lengths[1], 20)
    expected = kts.batch_shot_boundaries(batch, lengths, 32, penalty)
    got = compiled(32, penalty)(batch, lengths).numpy()
    np.testing.assert_array_equal(got, expected)
    assert np.all(got[:, -1] == lengths) and np.all(np.diff(got, axis=1) >= 0)


def test_graph_traces_with_unknown_batch_and_static_length():
    fn = tf.function(lambda v, n: kts_graph.shot_boundaries_tf(v, n, 4))
    concrete = fn.get_concrete_function(
        tf.TensorSpec([None, 10, 3], tf.float32), tf.TensorSpec([None], tf.int64)
    )
    assert concrete.structured_outputs.shape.as_list() == [None, 5]
    rng = np.random.default_rng(10)
    videos = rng.normal(size=(3, 10, 3)).astype(np.float32)
    lengths = np.array([10, 4, 12])  # 12 is clipped to 10
    np.testing.assert_array_equal(
        concrete(tf.constant(videos), tf.constant(lengths)).numpy(),
        kts.batch_shot_boundaries(videos, lengths, 4),
    )


def test_reused_work_arrays_leave_no_trace_between_calls():
    # Each thread keeps its work arrays between calls: a longer video, then a
    # shorter one, then the first again must give what fresh arrays give, and
    # what a call returns must not change when the next call reuses them.
    rng = np.random.default_rng(7)
    long_video, short_video = random_video(rng, 60, 12), random_video(rng, 17, 12)
    first = kts.shot_boundaries(long_video, 9)
    costs = kts.segment_costs(long_video)
    kept = costs.copy()
    short = kts.shot_boundaries(short_video, 4, penalty=1.0)
    kts._SCRATCH.__init__()  # drops this thread's arrays: fresh ones next
    assert np.array_equal(kts.shot_boundaries(short_video, 4, penalty=1.0), short)
    assert np.array_equal(kts.shot_boundaries(long_video, 9), first)
    assert np.array_equal(costs, kept)


def test_threads_get_their_own_work_arrays():
    rng = np.random.default_rng(8)
    videos = [random_video(rng, n, 10) for n in (40, 23, 57, 31) * 4]
    expected = [kts.shot_boundaries(v, 6) for v in videos]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda v: kts.shot_boundaries(v, 6), videos))
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
