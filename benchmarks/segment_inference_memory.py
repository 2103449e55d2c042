"""Peak memory of inference.py --segment_labels as the number of segments grows.

Generates small-feature videos (18-40 frames, so 4-8 segments each), trains
a model for one step, and runs inference.py --segment_labels on 1/10 of the
videos and on all of them, with the default --segment_max_pred and with a
small one, reporting each run's peak resident memory (the child's
ru_maxrss). With a small cap the heaps fill early and the peak must stay
flat as the segments grow tenfold; with the default cap the heaps hold every
offer, so the output itself grows.

    .venv/bin/python benchmarks/segment_inference_memory.py --segments=100000
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import generate_data  # noqa: E402

SEGMENTS_PER_VIDEO = 29 / 5  # mean frames (18 + 40) / 2, over 5


# Runs a program and prints its own peak RSS (KB) when it exits.
_WRAPPER = (
    "import atexit, resource, runpy, sys; "
    "atexit.register(lambda: print('PEAK', resource.getrusage("
    "resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
    "sys.argv = sys.argv[1:]; sys.path.insert(0, {root!r}); "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def run(program, *args):
    """(peak resident MB, seconds) of one program run."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.time()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _WRAPPER.format(root=ROOT),
            os.path.join(ROOT, program),
            *args,
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    peak = int(result.stderr.rsplit("PEAK", 1)[1].split()[0])
    return peak / 1024, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=100000)
    args = parser.parse_args()
    videos = int(args.segments / SEGMENTS_PER_VIDEO)
    with tempfile.TemporaryDirectory() as root:
        data = os.path.join(root, "data")
        for name, count in (("small", videos // 10), ("large", videos)):
            generate_data.generate(
                os.path.join(data, name),
                num_train=64 if name == "small" else 0,
                num_validate=0,
                num_test=count,
                num_shards=4,
                min_frames=18,
                max_frames=40,
                feature_sizes=(8, 4),
                levels=("frame",),
                write_truth=False,
            )
        train_dir = os.path.join(root, "run")
        run(
            "train.py",
            f"--train_dir={train_dir}",
            "--model=FrameLevelLogisticModel",
            f"--train_data_pattern={data}/small/frame/train*",
            "--feature_sizes=8,4",
            "--max_frames=40",
            "--num_classes=40",
            "--batch_size=16",
            "--max_steps=1",
        )
        classes = os.path.join(root, "classes.csv")
        with open(classes, "w") as f:
            f.write("".join(f"{c}\n" for c in range(40)))
        print(
            f"{'segments':>9} {'--segment_max_pred':>18} {'peak RSS MB':>12} {'s':>6}"
        )
        for cap in (1000, 100000):
            for name in ("small", "large"):
                peak, seconds = run(
                    "inference.py",
                    f"--train_dir={train_dir}",
                    f"--input_data_pattern={data}/{name}/frame/test*",
                    f"--output_file={root}/segments.csv",
                    "--segment_labels",
                    f"--segment_label_ids_file={classes}",
                    f"--segment_max_pred={cap}",
                )
                with open(f"{root}/segments.csv") as f:
                    listed = sum(len(line.split()) for line in f) - 1
                segments = int(
                    (videos // 10 if name == "small" else videos) * SEGMENTS_PER_VIDEO
                )
                print(
                    f"{segments:>9} {cap:>18} {peak:>12.0f} {seconds:>6.1f}"
                    f"   ({listed} listed)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
