"""Reader throughput on frame-level records, in videos per second.

By default writes 2,000 generated full-size videos (300 frames of 1024 + 128
features, 4 files) to a temporary directory; --pattern reads real records
instead (e.g. the YouTube-8M frame sample). The files are read from the page
cache (one untimed pass first). Each pipeline is measured --rounds times in
turn and its median is reported against two baselines from the same run: a
plain per-record tf.data pipeline (plain_reader.py) in the same order and
dtype, and a bare TFRecordDataset byte read.

  .venv/bin/python benchmarks/bench_readers.py [--pattern GLOB] [--rounds 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # pylint: disable=wrong-import-position

import generate_data  # pylint: disable=wrong-import-position
import plain_reader  # pylint: disable=wrong-import-position
import readers  # pylint: disable=wrong-import-position
import shots  # pylint: disable=wrong-import-position
import tfrecord_files  # pylint: disable=wrong-import-position


def generated_pattern(directory, num_videos, num_classes):
    generate_data.generate(
        directory,
        num_train=num_videos,
        num_classes=num_classes,
        num_validate=0,
        num_test=0,
        num_shards=4,
        min_frames=300,
        max_frames=300,
        levels=("frame",),
        write_truth=False,
    )
    return os.path.join(directory, "frame", "train*.tfrecord")


def videos_per_second(dataset):
    """Rate of one pass; the first batch (start-up, compilation) is untimed."""
    it = iter(dataset)
    next(it)
    videos = 0
    start = time.perf_counter()
    for batch in it:
        videos += int(tf.nest.flatten(batch)[0].shape[0])
    return videos / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="", help="default: generated data")
    parser.add_argument("--videos", type=int, default=2000, help="videos to generate")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num_classes", type=int, default=3862)
    parser.add_argument(
        "--shot_videos",
        type=int,
        default=512,
        help="videos read with KTS computed in the pipeline (it is slow)",
    )
    parser.add_argument("--shots_only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.shots_only:
        measure_shots(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        if not args.pattern:
            args.pattern = generated_pattern(scratch, args.videos, args.num_classes)
        measure(args)


def measure(args):
    files = tfrecord_files.match_files(args.pattern)
    per_pass = sum(1 for _ in tf.data.TFRecordDataset(files))  # warms the cache
    print(
        f"{len(files)} files, {per_pass} videos a pass, batch {args.batch}, "
        f"{args.rounds} rounds, {os.cpu_count()} CPUs"
    )
    batch, classes = args.batch, args.num_classes

    def ours(dequantize, training, **kwargs):
        reader = readers.YT8MFrameFeatureReader(
            num_classes=classes, dequantize=dequantize
        )
        return lambda: reader.dataset(
            args.pattern, batch, training=training, shuffle_buffer=256, seed=1, **kwargs
        )

    def plain(dequantize, training):
        return lambda: plain_reader.plain_frame_dataset(
            files, batch, classes, dequantize=dequantize, training=training, seed=1
        )

    pipelines = {
        "bare TFRecord byte read": lambda: tf.data.TFRecordDataset(
            files, buffer_size=1 << 20
        )
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE),
    }
    for dtype, dequantize in (("float32", True), ("uint8", False)):
        for order, training in (("eval order", False), ("training order", True)):
            pipelines[f"plain per-record, {order}, {dtype}"] = plain(
                dequantize, training
            )
            pipelines[f"reader, {order}, {dtype}"] = ours(dequantize, training)
    rates = {name: [] for name in pipelines}
    for _ in range(args.rounds):
        for name, make in pipelines.items():
            rates[name].append(videos_per_second(make()))
    median = {name: statistics.median(r) for name, r in rates.items()}
    bare = median["bare TFRecord byte read"]
    print(
        "| pipeline | videos/s (median) | range | of the plain per-record "
        "pipeline | of the bare read |\n|---|---:|---:|---:|---:|"
    )
    for name, rate in median.items():
        versus = "plain per-record" if name.startswith("reader") else None
        ratio = (
            f"{rate / median[name.replace('reader', versus)]:.2f}x" if versus else ""
        )
        print(
            f"| {name} | {rate:.0f} | {min(rates[name]):.0f}-{max(rates[name]):.0f} "
            f"| {ratio} | {rate / bare:.3f} |"
        )

    print()
    for cores in sorted({1, len(os.sched_getaffinity(0))}):
        print(shot_rates(args, cores))


def shot_rates(args, cores):
    """KTS computed in the pipeline vs the same reader without shots, run
    in a child process held to the first `cores` CPUs."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--shots_only",
        f"--pattern={args.pattern}",
        f"--num_classes={args.num_classes}",
        f"--batch={args.batch}",
        f"--shot_videos={args.shot_videos}",
    ]
    allowed = sorted(os.sched_getaffinity(0))[:cores]
    return subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, allowed),
    ).stdout.strip()


def measure_shots(args):
    reader = readers.YT8MFrameFeatureReader(num_classes=args.num_classes)
    take = max(2, args.shot_videos // args.batch)
    no_shot = videos_per_second(reader.dataset(args.pattern, args.batch).take(take))
    with_shots = videos_per_second(
        shots.add_shot_boundaries(
            reader.dataset(args.pattern, args.batch), 32, 1.0, reader.max_frames
        ).take(take)
    )
    cores = len(os.sched_getaffinity(0))
    print(
        f"{cores} core(s): KTS shots in the pipeline (m = 32, C = 1) "
        f"{with_shots:.0f} videos/s, {with_shots / no_shot:.3f}x the same reader "
        f"without shots ({no_shot:.0f} videos/s)"
    )


if __name__ == "__main__":
    main()
