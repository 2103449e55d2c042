"""Speed of KTS shot segmentation on 300-frame, 1152-d videos at m = 32.

Compares kts.shot_boundaries with a straightforward Python-loop dynamic
programme of the same objective (the baseline, below), checks that both
give identical boundaries, and times kts_graph.shot_boundaries_tf on a batch
of 32. Run from the repository root:

    python benchmarks/bench_kts.py [--repeats 15]
"""

import argparse
import os
import statistics
import sys
import time

# Before numpy loads: on shared cores a multi-threaded BLAS spin-waits and
# timings swing several-fold; one thread gives repeatable numbers (set the
# variable yourself to measure with more).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import kts  # noqa: E402

FRAMES, DIM, SHOTS, BATCH = 300, 1152, 32, 32


def baseline_shot_boundaries(features, num_shots):
    """Plain KTS: float64 costs, a loop per (shots, end frame), prefix DP.

    best[k, j] = min_i best[k-1, i] + cost[i, j] over the first j frames.
    Ties are left to argmin (smallest last split), which only matters on
    exactly tied costs; the inputs below have none.

    Args:
      features: float [n, D], n >= num_shots.
    Returns:
      int32 [num_shots + 1].
    """
    x = np.asarray(features, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), 0.0)
    n = len(u)
    gram = u @ u.T
    prefix = np.zeros((n + 1, n + 1))
    prefix[1:, 1:] = gram.cumsum(0).cumsum(1)
    diag = np.concatenate([[0.0], np.cumsum(np.diag(gram))])
    cost = np.full((n + 1, n + 1), np.inf)
    for a in range(n):
        b = np.arange(a + 1, n + 1)
        block = prefix[b, b] - 2 * prefix[a, b] + prefix[a, a]
        cost[a, a + 1 :] = diag[b] - diag[a] - block / (b - a)
    best = np.full((num_shots + 1, n + 1), np.inf)
    best[0, 0] = 0.0
    back = np.zeros((num_shots + 1, n + 1), np.int64)
    for k in range(1, num_shots + 1):
        for j in range(k, n + 1):
            candidates = best[k - 1, k - 1 : j] + cost[k - 1 : j, j]
            i = int(np.argmin(candidates))
            best[k, j] = candidates[i]
            back[k, j] = i + k - 1
    bounds = np.zeros(num_shots + 1, np.int32)
    bounds[-1] = n
    for k in range(num_shots, 0, -1):
        bounds[k - 1] = back[k, bounds[k]]
    return bounds


def timed(fn, repeats):
    """(median, min) wall time of fn() in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def make_videos(rng, count):
    """Random frames and piecewise-constant-plus-noise frames, alternating."""
    videos = []
    for v in range(count):
        if v % 2:
            cuts = np.sort(rng.choice(np.arange(1, FRAMES), 40, replace=False))
            lengths = np.diff(np.concatenate([[0], cuts, [FRAMES]]))
            centres = rng.normal(size=(len(lengths), DIM))
            frames = np.repeat(centres, lengths, axis=0)
            frames = frames + rng.normal(size=(FRAMES, DIM))
        else:
            frames = rng.normal(size=(FRAMES, DIM))
        videos.append(frames.astype(np.float32))
    return videos


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip_tf", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    videos = make_videos(rng, 6)

    for v in videos:
        ours, base = kts.shot_boundaries(v, SHOTS), baseline_shot_boundaries(v, SHOTS)
        if not np.array_equal(ours, base):
            raise SystemExit(f"boundaries differ:\n{ours}\n{base}")
    print(
        f"identical boundaries on {len(videos)} videos "
        f"({FRAMES} frames x {DIM}, m={SHOTS})"
    )

    cycle = iter(range(10**9))

    def run(fn):
        return lambda: fn(videos[next(cycle) % len(videos)], SHOTS)

    base_med, base_min = timed(run(baseline_shot_boundaries), args.repeats)
    ours_med, ours_min = timed(run(kts.shot_boundaries), args.repeats)
    print(
        f"baseline Python-loop DP : {base_med:7.2f} ms/video median "
        f"({base_min:.2f} min)"
    )
    print(
        f"kts.shot_boundaries     : {ours_med:7.2f} ms/video median "
        f"({ours_min:.2f} min)"
    )
    print(
        f"speed-up                : {base_med / ours_med:7.1f}x median "
        f"({base_min / ours_min:.1f}x min)"
    )

    if args.skip_tf:
        return
    import tensorflow as tf  # noqa: E402
    import kts_graph  # noqa: E402

    batch = np.stack([videos[b % len(videos)] for b in range(BATCH)])
    lengths = np.full(BATCH, FRAMES, np.int32)
    fn = tf.function(lambda x, n: kts_graph.shot_boundaries_tf(x, n, SHOTS))
    got = fn(batch, lengths).numpy()  # traces
    if not np.array_equal(got, kts.batch_shot_boundaries(batch, lengths, SHOTS)):
        raise SystemExit("kts_graph differs from kts")
    tf_med, tf_min = timed(
        lambda: fn(batch, lengths).numpy(), max(3, args.repeats // 5)
    )
    print(
        f"kts_graph, batch of {BATCH}  : {tf_med / BATCH:7.2f} ms/video median "
        f"({tf_min / BATCH:.2f} min), identical to kts"
    )


if __name__ == "__main__":
    main()
