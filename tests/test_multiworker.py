"""train.py under MultiWorkerMirroredStrategy: two worker processes on
127.0.0.1, configured by TF_CONFIG, against one process with the same
global batch.

Why the comparison is exact up to float rounding: LogisticModel has no
dropout or sampling, SGD has no state besides the step, and every step's
batch is the whole training set (two files of 32 records, global batch 64,
one epoch per step), so the order in which records arrive cannot matter.
Both runs start from the same checkpoint, written by a first two-worker run,
so no seed has to line up either; that first run also makes the second one
a resume, which every worker must take from the chief's checkpoint. The
second run takes two steps: the chief's final weights only match the single
process if the other worker still held the same weights for its share of the
second step's gradient.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from program_testing import ROOT, run_program, write_tiny_data

# Runs the programs in subprocesses or trains models: the full suite only.
pytestmark = pytest.mark.slow

NUM_CLASSES = 10
RECORDS_PER_FILE = 32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_tiny_data(
        directory,
        seed=5,
        num_train=2 * RECORDS_PER_FILE,
        num_validate=0,
        num_test=0,
        num_classes=NUM_CLASSES,
        num_distractor_events=4,
        levels=("video",),
    )
    return directory


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def args(data_dir, train_dir, max_steps, num_epochs):
    return [
        f"--train_dir={train_dir}",
        "--model=LogisticModel",
        f"--train_data_pattern={data_dir}/video/train*.tfrecord",
        "--feature_sizes=8,4",
        f"--num_classes={NUM_CLASSES}",
        f"--batch_size={2 * RECORDS_PER_FILE}",
        "--optimizer=sgd",
        "--base_learning_rate=0.5",
        # Small enough that every step clips: clipping must see the gradient
        # summed over the workers, not each worker's share.
        "--clip_gradient_norm=0.05",
        f"--num_epochs={num_epochs}",
        f"--max_steps={max_steps}",
        "--log_steps=1",
    ]


def start_two_workers(flags):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_CONFIG": json.dumps(config),
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, os.path.join(ROOT, "train.py"), *flags],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def run_two_workers(flags):
    processes = start_two_workers(flags)
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=240)
            outputs.append((process.returncode, out, err))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for returncode, out, err in outputs:
        assert returncode == 0, f"worker failed:\n{out}\n{err[-3000:]}"
    return [out for _, out, _ in outputs]


def weights(checkpoint_path):
    reader = tf.train.load_checkpoint(checkpoint_path)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith("model_variables/") and "OPTIMIZER_SLOT" not in name
    }


def test_two_workers_train_like_one_process(data_dir, tmp_path):
    cluster_dir = tmp_path / "cluster"
    run_two_workers(args(data_dir, cluster_dir, max_steps=1, num_epochs=1))
    start = tf.train.latest_checkpoint(str(cluster_dir))
    assert start.endswith("ckpt-1")
    # Non-chief workers keep their checkpoints in scratch space only.
    assert not any(name.startswith(".worker_") for name in os.listdir(cluster_dir))
    single_dir = tmp_path / "single"
    shutil.copytree(cluster_dir, single_dir)

    # Three epochs of 64 records in batches of 64 end at step 3, counted
    # from the first run's step 0.
    outputs = run_two_workers(args(data_dir, cluster_dir, max_steps=10, num_epochs=3))
    for out in outputs:
        assert "resuming from" in out and "at step 1" in out
        assert re.search(r"training step 3\b", out)
    summary = json.loads((cluster_dir / "training_summary.json").read_text())
    assert summary["steps"] == 2 and summary["final_step"] == 3
    assert (cluster_dir / "export" / "step_3" / "saved_model.pb").exists()

    run_program(
        "train.py",
        *args(data_dir, single_dir, max_steps=10, num_epochs=3),
        "--distribution_strategy=default",
    )
    summary = json.loads((single_dir / "training_summary.json").read_text())
    assert summary["steps"] == 2

    before = weights(start)
    cluster = weights(tf.train.latest_checkpoint(str(cluster_dir)))
    single = weights(tf.train.latest_checkpoint(str(single_dir)))
    assert cluster.keys() == single.keys() and cluster
    for name in cluster:
        # Training moved the weights well beyond the tolerance...
        assert np.abs(cluster[name] - before[name]).max() > 1e-3, name
        # ...and both runs moved them the same way (float32 sums in another
        # order differ by a few ulp).
        np.testing.assert_allclose(cluster[name], single[name], atol=1e-6, err_msg=name)


def test_sigterm_to_one_worker_stops_both_after_the_same_step(data_dir, tmp_path):
    train_dir = tmp_path / "run"
    flags = args(data_dir, train_dir, max_steps=100000, num_epochs=100000)
    chief, other = start_two_workers(flags)
    try:
        for line in chief.stdout:
            if re.match(r"training step 3\b", line):
                break
        # The worker that is not the chief is told to stop: both must.
        other.send_signal(signal.SIGTERM)
        rest, chief_err = chief.communicate(timeout=120)
        _, other_err = other.communicate(timeout=120)
    finally:
        for process in (chief, other):
            if process.poll() is None:
                process.kill()
                process.wait()
    assert chief.returncode == other.returncode == 143, (
        rest[-2000:],
        chief_err[-3000:],
        other_err[-3000:],
    )
    stopped = re.search(r"stopped by SIGTERM after step (\d+)", rest)
    assert stopped, rest
    step = int(stopped.group(1))
    reported = [int(n) for n in re.findall(r"training step (\d+)\b", rest)]
    assert step >= 3 and (not reported or reported[-1] <= step)
    assert tf.train.latest_checkpoint(str(train_dir)).endswith(f"ckpt-{step}")
