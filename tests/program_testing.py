"""What the program-level tests share: tiny generated data, running a program."""

import os
import subprocess
import sys

import generate_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURE_SIZES = "8,4"
NUM_CLASSES = 40


def write_tiny_data(directory, seed, **overrides):
    """Generated shards small enough for a test: 12-d features, 18-40 frames."""
    settings = dict(
        num_shards=2,
        num_classes=40,
        min_frames=18,
        max_frames=40,
        feature_sizes=(8, 4),
        write_truth=False,
        seed=seed,
    )
    settings.update(overrides)
    return generate_data.generate(str(directory), **settings)


def run_program(program, *args, check=True):
    """Runs one of the project's programs as a user would; returns the result."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, program), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{program} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
        )
    return result


def train_args(data_dir, train_dir, model="FrameLevelLogisticModel", *extra):
    return [
        f"--train_dir={train_dir}",
        "--frame_features",
        f"--model={model}",
        f"--train_data_pattern={data_dir}/frame/train*.tfrecord",
        f"--feature_sizes={FEATURE_SIZES}",
        "--max_frames=40",
        f"--num_classes={NUM_CLASSES}",
        "--batch_size=8",
        "--base_learning_rate=0.01",
        "--log_steps=2",
        *extra,
    ]
