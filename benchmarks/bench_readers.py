"""Reader throughput on frame-level records, in videos per second.

By default writes 400 generated full-size videos (300 frames of 1024 + 128
features, 4 files) to a temporary directory; --pattern reads real records
instead (e.g. the YouTube-8M frame sample). The files are read over and over
from the page cache until a few thousand videos went through, and each
reader pipeline is compared with a bare TFRecordDataset byte read of the
same files in the same run.

  .venv/bin/python benchmarks/bench_readers.py [--pattern GLOB] [--videos 3000]
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # pylint: disable=wrong-import-position

import generate_data  # pylint: disable=wrong-import-position
import readers  # pylint: disable=wrong-import-position
import tfrecord_files  # pylint: disable=wrong-import-position


def generated_pattern(directory):
    generate_data.generate(
        directory,
        num_train=400,
        num_validate=0,
        num_test=0,
        num_shards=4,
        min_frames=300,
        max_frames=300,
        levels=("frame",),
        write_truth=False,
    )
    return os.path.join(directory, "frame", "train*.tfrecord")


def _time(dataset, size_fn):
    """(videos, seconds) for one pass; the first batch warms up untimed."""
    it = iter(dataset)
    videos = size_fn(next(it))
    start = time.perf_counter()
    for batch in it:
        videos += size_fn(batch)
    return videos, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pattern", default="", help="default: generated data")
    parser.add_argument(
        "--videos",
        type=int,
        default=3000,
        help="read at least this many videos per measurement",
    )
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if not args.pattern:
            args.pattern = generated_pattern(scratch)
        measure(args)


def measure(args):
    files = tfrecord_files.match_files(args.pattern)
    per_pass = sum(1 for _ in tf.data.TFRecordDataset(files))
    passes = max(1, -(-args.videos // per_pass))
    print(
        f"{len(files)} files, {per_pass} videos a pass, {passes} passes, "
        f"batch {args.batch}, {os.cpu_count()} CPUs"
    )

    bare = (
        tf.data.TFRecordDataset(files * passes, buffer_size=1 << 20)
        .batch(args.batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    n, secs = _time(bare, lambda b: int(b.shape[0]))
    bare_rate = n / secs
    print(f"bare TFRecord byte read        {bare_rate:9.0f} videos/s")

    def count(batch):
        return int(batch["num_frames"].shape[0])

    def report(name, dataset):
        n, secs = _time(dataset, count)
        rate = n / secs
        spec = dataset.element_spec["video_matrix"]
        print(
            f"{name:30s} {rate:9.0f} videos/s  ({rate / bare_rate:.3f} of "
            f"bare; video_matrix {spec.dtype.name} {spec.shape.as_list()})"
        )
        return rate

    reader = readers.YT8MFrameFeatureReader()
    report(
        "eval (in order), float32",
        reader.dataset(args.pattern, args.batch).repeat(passes),
    )
    report(
        "training, float32",
        reader.dataset(
            args.pattern,
            args.batch,
            training=True,
            num_epochs=passes,
            shuffle_buffer=256,
            seed=1,
        ),
    )
    report(
        "eval (in order), uint8",
        readers.YT8MFrameFeatureReader(dequantize=False)
        .dataset(args.pattern, args.batch)
        .repeat(passes),
    )
    # KTS is far slower than parsing; a few batches give its rate.
    shots_passes = max(1, passes // 10)
    report(
        "eval, num_shots=32 (KTS)",
        reader.dataset(args.pattern, args.batch, num_shots=32).repeat(shots_passes),
    )


if __name__ == "__main__":
    main()
