"""Times eval_util.EvaluationMetrics against a straightforward per-video loop.

Random uniform float32 predictions over 3862 classes, about 3 labels a video,
fed in batches of 1024; only accumulate() and get() are timed (generating the
data is not). The loop baseline (per-video sorts and Python lists, the way the
starter code computed these metrics) runs on a smaller subset and is
extrapolated per video.

    python benchmarks/bench_metrics.py [--videos 100000] [--baseline_videos 5000]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import eval_util  # pylint: disable=wrong-import-position


def make_batch(rng, size, num_classes, labels_per_video):
    """Returns predictions float32 [size, C] and multi-hot labels [size, C]."""
    preds = rng.random((size, num_classes), dtype=np.float32)
    labels = np.zeros((size, num_classes), np.float32)
    counts = rng.poisson(labels_per_video - 1, size) + 1
    for row, count in enumerate(counts):
        labels[
            row, rng.choice(num_classes, size=min(count, num_classes), replace=False)
        ] = 1.0
    return preds, labels


def loop_metrics(batches, top_k):
    """Hit@1, PERR, GAP and mAP with one loop iteration per video."""
    pairs, class_positives = [], {}
    hits = perr = 0.0
    num_videos = 0
    for preds, labels in batches:
        for row, label_row in zip(preds, labels):
            ranked = np.argsort(-row, kind="stable")
            positives = set(np.flatnonzero(label_row > 0).tolist())
            for c in positives:
                class_positives[c] = class_positives.get(c, 0) + 1
            hits += ranked[0] in positives
            if positives:
                top = ranked[: len(positives)]
                perr += sum(1 for c in top if c in positives and row[c] > 0) / len(
                    positives
                )
            for c in ranked[:top_k].tolist():
                pairs.append((-float(row[c]), num_videos, c, c in positives))
            num_videos += 1
    pairs.sort()
    total = sum(class_positives.values())
    found, gap, per_class = 0, 0.0, {}
    for rank, (_, _, c, positive) in enumerate(pairs, 1):
        per_class.setdefault(c, []).append(positive)
        if positive:
            found += 1
            gap += found / rank
    aps = []
    for c, npos in class_positives.items():
        found, ap = 0, 0.0
        for rank, positive in enumerate(per_class.get(c, []), 1):
            if positive:
                found += 1
                ap += found / rank
        aps.append(ap / npos)
    return {
        "avg_hit_at_one": hits / num_videos,
        "avg_perr": perr / num_videos,
        "gap": gap / total,
        "map": float(np.mean(aps)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100000)
    parser.add_argument("--baseline_videos", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=3862)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--top_k", type=int, default=20)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    metrics = eval_util.EvaluationMetrics(args.classes, args.top_k)
    elapsed = 0.0
    done = 0
    while done < args.videos:
        size = min(args.batch_size, args.videos - done)
        preds, labels = make_batch(rng, size, args.classes, 3)
        start = time.perf_counter()
        metrics.accumulate(preds, labels, np.zeros(size, np.float32))
        elapsed += time.perf_counter() - start
        done += size
    start = time.perf_counter()
    result = metrics.get()
    elapsed += time.perf_counter() - start
    print(
        "EvaluationMetrics: %d videos x %d classes, batches of %d: %.2f s "
        "(%.1f us/video)"
        % (
            args.videos,
            args.classes,
            args.batch_size,
            elapsed,
            1e6 * elapsed / args.videos,
        )
    )
    print(
        "  Hit@1 %.4f  PERR %.4f  GAP %.4f  MAP %.4f"
        % (result["avg_hit_at_one"], result["avg_perr"], result["gap"], result["map"])
    )

    rng = np.random.default_rng(1)
    batches = []
    done = 0
    while done < args.baseline_videos:
        size = min(args.batch_size, args.baseline_videos - done)
        batches.append(make_batch(rng, size, args.classes, 3))
        done += size
    start = time.perf_counter()
    expected = loop_metrics(batches, args.top_k)
    loop_seconds = time.perf_counter() - start
    fast = eval_util.EvaluationMetrics(args.classes, args.top_k)
    start = time.perf_counter()
    for preds, labels in batches:
        fast.accumulate(preds, labels, 0.0)
    got = fast.get()
    fast_seconds = time.perf_counter() - start
    per_video = loop_seconds / args.baseline_videos
    print(
        "Per-video loop: %d videos: %.2f s (%.1f us/video), extrapolated to "
        "%d videos: %.1f s, %.0fx the EvaluationMetrics time"
        % (
            args.baseline_videos,
            loop_seconds,
            1e6 * per_video,
            args.videos,
            per_video * args.videos,
            per_video * args.videos / elapsed,
        )
    )
    print(
        "  same %d videos with EvaluationMetrics: %.3f s"
        % (args.baseline_videos, fast_seconds)
    )
    worst = max(abs(got[key] - expected[key]) for key in expected)
    print("  largest difference between the two on that subset: %.2e" % worst)


if __name__ == "__main__":
    main()
