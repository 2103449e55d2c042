"""Speed of precompute_shots.py on full-size records, 1 and 2 worker processes.

Writes generated frame-level shards of the dataset's size (rgb 1024 + audio
128, up to 300 frames a video) and copies them with 32 KTS shots stored
(C = 1, the DCGN default), with --num_workers=1 and 2, against a plain copy
of the same records (read, parse, write back, no KTS) in the same run. Run
from the repository root:

    python benchmarks/bench_precompute_shots.py [--videos 1536] [--files 32]
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cli  # noqa: E402, F401  (first: it quiets TensorFlow's C++ log)
import generate_data  # noqa: E402
import precompute_shots  # noqa: E402


def plain_copy(pattern, out_dir):
    """The records read, parsed and written back unchanged: the baseline."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    import tfrecord_files  # pylint: disable=import-outside-toplevel

    os.makedirs(out_dir)
    videos = 0
    for path in tfrecord_files.match_files(pattern):
        out = os.path.join(out_dir, os.path.basename(path))
        with tf.io.TFRecordWriter(out) as writer:
            for serialized in tf.data.TFRecordDataset([path]).as_numpy_iterator():
                example = tf.train.SequenceExample.FromString(serialized)
                writer.write(example.SerializeToString())
                videos += 1
    return videos


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Enough work that each worker's start-up (TensorFlow's import) is small
    # beside it, as on the dataset's 3,844 files.
    parser.add_argument("--videos", type=int, default=1536)
    parser.add_argument("--files", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        generate_data.generate(
            os.path.join(root, "data"),
            num_train=args.videos,
            num_validate=0,
            num_test=0,
            num_shards=args.files,
            min_frames=200,
            max_frames=300,
            levels=("frame",),
            write_truth=False,
            seed=1,
        )
        pattern = os.path.join(root, "data", "frame", "train*.tfrecord")
        start = time.monotonic()
        videos = plain_copy(pattern, os.path.join(root, "plain"))
        plain = videos / (time.monotonic() - start)
        rates = {}
        for workers in (1, 2):
            start = time.monotonic()
            _, videos = precompute_shots.add_shot_boundaries_to_records(
                pattern, os.path.join(root, f"shots{workers}"), 32, num_workers=workers
            )
            rates[workers] = videos / (time.monotonic() - start)
    print(
        f"{videos} videos of 200-300 frames, 1152-d, in {args.files} files; 32 shots, C = 1"
    )
    print(f"plain copy (no KTS): {plain:.1f} videos/s")
    for workers, rate in rates.items():
        print(
            f"precompute_shots.py --num_workers={workers}: {rate:.1f} videos/s, "
            f"{rate / plain:.3f}x the plain copy"
        )
    print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
