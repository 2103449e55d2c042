"""A full disk at every kind of write, and eval.py beside a rotating train.py.

A full disk is injected at the write (tests/fault_runner.py) where a real
one cannot be made; the programs see the same errors at the same calls.
"""

import errno
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import atomic_files
import common
from program_testing import ROOT, run_program, train_args

RUNNER = os.path.join("tests", "fault_runner.py")


def run_with_fault(fault, program, *args):
    return run_program(RUNNER, fault, program, *args, check=False)


def test_full_disk_keeps_the_previous_file_whole(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old\n")
    with pytest.raises(atomic_files.DiskFull) as raised:
        with atomic_files.atomic_open(str(path)) as f:
            f.write("new")
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(raised.value)
    assert f"no space left on the disk of {tmp_path} while writing {path}" in message
    assert "the previous results.json is intact" in message
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["results.json"]
    with pytest.raises(PermissionError):  # other errors keep their type
        with atomic_files.atomic_open(str(path)):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_disk_full_errors_are_told_from_others():
    tf_full = tf.errors.ResourceExhaustedError(None, None, "x; No space left on device")
    assert atomic_files.is_disk_full(tf_full)
    assert atomic_files.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not atomic_files.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not atomic_files.is_disk_full(
        tf.errors.ResourceExhaustedError(None, None, "OOM")
    )


def test_restoring_a_removed_checkpoint_says_so(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = common.make_checkpoint(model).save(str(tmp_path / "ckpt"))
    for name in os.listdir(tmp_path):
        if ".data" in name:
            os.remove(tmp_path / name)
    with pytest.raises(common.CheckpointGone, match="ckpt-1 was removed"):
        common.restore(model, path)


def test_a_relative_train_dir_restores_its_latest_checkpoint(tmp_path, monkeypatch):
    # As the README runs the programs: --train_dir=runs/dcgn.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    manager = tf.train.CheckpointManager(
        common.make_checkpoint(model), str(tmp_path / "runs" / "dcgn"), 2
    )
    manager.save(checkpoint_number=7)
    monkeypatch.chdir(tmp_path)
    latest = common.named_latest_checkpoint(os.path.join("runs", "dcgn"))
    assert os.path.samefile(latest + ".index", tmp_path / "runs/dcgn/ckpt-7.index")
    assert common.restore_latest(model, os.path.join("runs", "dcgn")) == latest


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("trained")
    run_program(
        "train.py",
        *train_args(data_dir, train_dir),
        "--max_steps=4",
        "--save_checkpoint_steps=2",
    )
    return train_dir


@pytest.mark.slow
def test_full_disk_at_a_checkpoint(data_dir, tmp_path):
    args = train_args(
        data_dir,
        tmp_path,
        "FrameLevelLogisticModel",
        "--max_steps=6",
        "--save_checkpoint_steps=2",
    )
    result = run_with_fault("checkpoint:2", "train.py", *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        f"no space left on the disk of {tmp_path} while writing the checkpoint "
        "ckpt-4; the last good checkpoint, ckpt-2, is intact. Free some space"
        in result.stderr
    )
    assert not [n for n in os.listdir(tmp_path) if n.startswith("ckpt-4")]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
    resumed = run_program("train.py", *args)
    assert "at step 2" in resumed.stdout


@pytest.mark.slow
def test_full_disk_at_an_export(data_dir, tmp_path):
    args = train_args(data_dir, tmp_path, "FrameLevelLogisticModel", "--max_steps=2")
    result = run_with_fault("export", "train.py", *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "while writing the export step_2; the last good checkpoint, ckpt-2, is intact"
        in result.stderr
    )
    assert os.listdir(tmp_path / "export") == []  # no staging directory left


@pytest.mark.slow
def test_full_disk_at_the_csv(trained, data_dir, tmp_path):
    output = tmp_path / "submission.csv"
    output.write_text("VideoId,LabelConfidencePairs\nprevious,1 0.5\n")
    result = run_with_fault(
        "csv:3",
        "inference.py",
        f"--train_dir={trained}",
        f"--input_data_pattern={data_dir}/frame/test*.tfrecord",
        f"--output_file={output}",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        f"while writing {output}; the previous submission.csv is intact"
        in result.stderr
    )
    assert output.read_text().endswith("previous,1 0.5\n")
    assert os.listdir(tmp_path) == ["submission.csv"]


@pytest.mark.slow
def test_free_space_check_is_sized_from_the_run(trained, data_dir, tmp_path):
    # The tiny model's checkpoints are far below a MiB: 52 MiB is plenty.
    args = train_args(data_dir, trained, "FrameLevelLogisticModel", "--max_steps=6")
    run_program(RUNNER, f"free:{52 << 20}", "train.py", *args)
    # DBoF of the paper's size (8.4 M weights, 100 MB a checkpoint with Adam's
    # moments) does not fit in 52 MiB.
    big = train_args(
        data_dir,
        tmp_path,
        "DbofModel",
        "--dbof_cluster_size=8192",
        "--dbof_hidden_size=1024",
    )
    result = run_with_fault(f"free:{52 << 20}", "train.py", *big)
    assert result.returncode == 1
    assert "has 52.0 MiB free; this run writes about" in result.stderr
    assert "--keep_checkpoint_max=5" in result.stderr
    assert not os.listdir(tmp_path)  # refused before anything was written


@pytest.mark.slow
def test_run_once_on_a_removed_latest_checkpoint(trained, data_dir, tmp_path):
    copy = tmp_path / "run"
    subprocess.run(["cp", "-r", str(trained), str(copy)], check=True)
    latest = os.path.basename(tf.train.latest_checkpoint(str(copy)))
    for name in os.listdir(copy):
        if name.startswith(latest + "."):
            os.remove(copy / name)
    result = run_program(
        "eval.py",
        f"--train_dir={copy}",
        f"--eval_data_pattern={data_dir}/frame/validate*.tfrecord",
        "--run_once",
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{latest}, has no files" in result.stderr
    assert "could not be found in the restored object" not in result.stderr


@pytest.mark.slow
def test_eval_beside_a_train_that_rotates_every_step(data_dir, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    train = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            *train_args(
                data_dir,
                tmp_path,
                "FrameLevelLogisticModel",
                "--max_steps=600",
                "--num_epochs=1000",
                "--save_checkpoint_steps=1",
                "--keep_checkpoint_max=1",
                "--log_steps=50",
            ),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    while tf.train.latest_checkpoint(str(tmp_path)) is None and time.time() < deadline:
        time.sleep(0.2)
    evaluate = subprocess.run(
        [
            sys.executable,
            "eval.py",
            f"--train_dir={tmp_path}",
            f"--eval_data_pattern={data_dir}/frame/validate*.tfrecord",
            "--eval_timeout_secs=5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    train.wait(timeout=120)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert "Traceback" not in evaluate.stderr
    assert "could not be found in the restored object" not in evaluate.stderr
    evaluations = [line for line in evaluate.stdout.splitlines() if "| GAP:" in line]
    assert len(evaluations) >= 2, evaluate.stdout
    steps = [int(line.split()[1]) for line in evaluations]
    assert steps == sorted(steps)
    assert np.all(np.diff(steps) > 0)
