"""Speed of KTS shot segmentation on 300-frame, 1152-d videos at m = 32.

Compares kts.shot_boundaries, on one thread, with two baselines of the same
objective (cosine kernel, fixed m, any shot length >= 1), checking that all
give identical boundaries: ruptures' KernelCPD (C, the usual
change-point library; requirements-dev.txt) and a straightforward
vectorised numpy dynamic programme (below). Also times eq. (8)'s cuts
(C = 1, the default for DCGN's shots) and kts_graph.shot_boundaries_tf on a
batch of 32. Run from the repository root:

    python benchmarks/bench_kts.py [--repeats 15] [--videos 12]
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


def numpy_shot_boundaries(features, num_shots):
    """Plain vectorised KTS: float64 costs from prefix sums, one min-plus
    step over the whole [n+1, n+1] table per shot.

    best_k[j] = min_i best_{k-1}[i] + cost[i, j] over the first j frames;
    argmin keeps the smallest i, which only matters on exactly tied costs.

    Args:
      features: float [n, D], n >= num_shots.
    Returns:
      int [num_shots + 1].
    """
    x = np.asarray(features, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    u = x / np.where(norm > 0, norm, 1.0)
    n = len(u)
    gram = u @ u.T
    prefix = np.zeros((n + 1, n + 1))
    prefix[1:, 1:] = gram.cumsum(0).cumsum(1)
    diag = np.concatenate([[0.0], np.cumsum(np.diag(gram))])
    idx = np.arange(n + 1)
    length = (idx[None, :] - idx[:, None]).astype(np.float64)
    block = np.diag(prefix)[None, :] + np.diag(prefix)[:, None] - 2 * prefix
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = diag[None, :] - diag[:, None] - block / length
    cost[length <= 0] = np.inf
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    back = np.zeros((num_shots, n + 1), np.int64)
    for k in range(num_shots):
        candidates = best[:, None] + cost  # [i, j]
        back[k] = np.argmin(candidates, axis=0)
        best = candidates[back[k], idx]
    bounds = [n]
    for k in range(num_shots - 1, -1, -1):
        bounds.append(back[k, bounds[-1]])
    return np.array(bounds[::-1])


def ruptures_shot_boundaries(features, num_shots):
    """ruptures.KernelCPD, cosine kernel, shots of any length >= 1."""
    import ruptures  # noqa: E402  (benchmark-only: requirements-dev.txt)

    detector = ruptures.KernelCPD(kernel="cosine", min_size=1, jump=1)
    cuts = detector.fit(features).predict(n_bkps=num_shots - 1)
    return np.array([0, *cuts])


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
    parser.add_argument("--repeats", type=int, default=24)
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--skip_tf", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    videos = make_videos(rng, args.videos)

    contenders = {
        "ruptures KernelCPD (baseline)": ruptures_shot_boundaries,
        "vectorised numpy DP (baseline)": numpy_shot_boundaries,
        "kts.shot_boundaries": kts.shot_boundaries,
    }
    for name, fn in list(contenders.items())[:2]:
        same = sum(
            np.array_equal(fn(v, SHOTS), kts.shot_boundaries(v, SHOTS)) for v in videos
        )
        print(f"{name}: boundaries identical to kts on {same} of {len(videos)}")
    contenders["kts.shot_boundaries, eq. (8) cuts, C = 1"] = (
        lambda v, m: kts.shot_boundaries(v, m, penalty=1.0)
    )

    # Round-robin over the implementations, each on the same video in a
    # round, so that all of them meet the same interference from whatever
    # else the machine is doing.
    samples = {name: [] for name in contenders}
    for repeat in range(args.repeats):
        video = videos[repeat % len(videos)]
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn(video, SHOTS)
            samples[name].append((time.perf_counter() - start) * 1e3)
    times = {name: (statistics.median(ms), min(ms)) for name, ms in samples.items()}
    ours = times["kts.shot_boundaries"][0]
    print(f"\n{args.videos} videos of {FRAMES} x {DIM}, m = {SHOTS}, one thread")
    print("| implementation | ms per video (median) | (min) | of kts's speed |")
    print("|---|---:|---:|---:|")
    for name, (median, low) in times.items():
        print(f"| {name} | {median:.2f} | {low:.2f} | {ours / median:.3f} |")
    for name in list(contenders)[:2]:
        print(f"kts.shot_boundaries is {times[name][0] / ours:.1f}x faster than {name}")

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
        f"kts_graph, batch of {BATCH}: {tf_med / BATCH:.2f} ms/video median "
        f"({tf_min / BATCH:.2f} min), identical to kts"
    )


if __name__ == "__main__":
    main()
