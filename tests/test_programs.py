"""train.py, eval.py and inference.py end to end, as a user runs them."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from program_testing import ROOT, run_program, train_args

# Runs the programs in subprocesses or trains models: the full suite only.
pytestmark = pytest.mark.slow

TOP_K = 20


def read_submission(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["VideoId", "LabelConfidencePairs"]
    parsed = {}
    for video_id, pairs in rows[1:]:
        fields = pairs.split()
        classes = [int(c) for c in fields[0::2]]
        scores = [float(s) for s in fields[1::2]]
        parsed[video_id] = (classes, scores)
    return parsed


def test_train_eval_inference_end_to_end(data_dir, tmp_path):
    train_dir = tmp_path / "run"
    out = run_program(
        "train.py",
        *train_args(data_dir, train_dir, "FrameLevelLogisticModel", "--max_steps=6"),
    )
    assert "training step 6" in out.stdout
    assert tf.train.latest_checkpoint(str(train_dir)).endswith("ckpt-6")
    config = json.loads((train_dir / "model_config.json").read_text())
    assert config["model"] == "FrameLevelLogisticModel"
    assert config["feature_sizes"] == [8, 4]
    summary = json.loads((train_dir / "training_summary.json").read_text())
    assert summary["steps"] == 6 and summary["examples_per_second"] > 0

    results_file = tmp_path / "eval.json"
    out = run_program(
        "eval.py",
        f"--train_dir={train_dir}",
        "--run_once",
        f"--eval_data_pattern={data_dir}/frame/validate*",
        "--batch_size=10",
        f"--eval_results_file={results_file}",
    )
    results = json.loads(results_file.read_text())
    # Progress: done out of the record count, before the result line.
    progress, result_line = out.stdout.splitlines()[-2:]
    assert progress.startswith("24/24 videos |") and "videos/s" in progress
    assert result_line.startswith("step 6 | examples 24")
    uint8_file = tmp_path / "eval_uint8.json"
    run_program(
        "eval.py",
        f"--train_dir={train_dir}",
        "--run_once",
        f"--eval_data_pattern={data_dir}/frame/validate*",
        "--batch_size=10",
        f"--eval_results_file={uint8_file}",
        "--dequantize_in_model",
    )
    uint8_results = json.loads(uint8_file.read_text())
    for key in ("gap", "hit_at_one", "perr", "map", "loss"):
        assert abs(uint8_results[key] - results[key]) < 1e-5, key
    assert results["num_examples"] == 24 and results["step"] == 6
    assert set(results) >= {"gap", "hit_at_one", "perr", "map", "loss"}
    assert f"GAP: {results['gap']:.3f}" in out.stdout
    assert "Avg_Hit@1" in out.stdout and "Avg_Loss" in out.stdout

    submission = tmp_path / "sub.csv"
    predicted = run_program(
        "inference.py",
        f"--train_dir={train_dir}",
        f"--input_data_pattern={data_dir}/frame/test*",
        f"--output_file={submission}",
        "--batch_size=7",
    )
    assert "20/20 videos |" in predicted.stdout
    rows = read_submission(submission)
    assert len(rows) == 20
    assert all(video_id.startswith("g") for video_id in rows)
    for classes, scores in rows.values():
        assert len(classes) == TOP_K == len(set(classes))
        assert scores == sorted(scores, reverse=True)

    # The exported SavedModel gives the same CSV from raw records.
    exported = tmp_path / "sub_exported.csv"
    run_program(
        "inference.py",
        f"--saved_model_dir={train_dir}/export/step_6",
        f"--input_data_pattern={data_dir}/frame/test*",
        f"--output_file={exported}",
        "--batch_size=7",
    )
    exported_rows = read_submission(exported)
    assert exported_rows.keys() == rows.keys()
    for video_id, (classes, scores) in rows.items():
        np.testing.assert_allclose(exported_rows[video_id][1], scores, atol=1e-5)


def test_killed_training_resumes_from_its_last_checkpoint(data_dir, tmp_path):
    train_dir = tmp_path / "run"
    args = train_args(
        data_dir,
        train_dir,
        "FrameLevelLogisticModel",
        "--save_checkpoint_steps=5",
        "--num_epochs=1000",
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            latest = tf.train.latest_checkpoint(str(train_dir))
            if latest and int(latest.rsplit("-", 1)[1]) >= 10:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = int(tf.train.latest_checkpoint(str(train_dir)).rsplit("-", 1)[1])
    assert killed_at >= 10

    out = run_program(
        "train.py",
        *train_args(
            data_dir,
            train_dir,
            "FrameLevelLogisticModel",
            f"--max_steps={killed_at + 4}",
            "--save_checkpoint_steps=5",
        ),
    )
    assert "resuming from" in out.stdout
    assert f"at step {killed_at}" in out.stdout
    assert tf.train.latest_checkpoint(str(train_dir)).endswith(f"ckpt-{killed_at + 4}")


def test_a_train_dir_of_another_model_is_refused(data_dir, tmp_path):
    train_dir = tmp_path / "run"
    run_program(
        "train.py",
        *train_args(data_dir, train_dir, "FrameLevelLogisticModel", "--max_steps=1"),
    )
    result = run_program(
        "train.py",
        *train_args(data_dir, train_dir, "DbofModel", "--max_steps=1"),
        check=False,
    )
    assert result.returncode == 1
    assert (
        "--model: 'FrameLevelLogisticModel' in the run so far, 'DbofModel' now"
        in result.stderr
    )
    # The model's own settings differ with it: only the model is named.
    assert "dbof" not in result.stderr and "Traceback" not in result.stderr


def test_bad_flags_get_clear_errors(data_dir, tmp_path):
    result = run_program(
        "train.py", *train_args(data_dir, tmp_path / "a", "NoSuchModel"), check=False
    )
    assert result.returncode == 1 and "LstmModel" in result.stderr
    result = run_program(
        "train.py", *train_args(tmp_path / "nothing", tmp_path / "b"), check=False
    )
    assert result.returncode == 1 and "nothing" in result.stderr
    assert "Traceback" not in result.stderr


def test_eval_and_inference_refuse_model_flags(data_dir, tmp_path):
    # A model flag would be ignored there (the model comes from
    # model_config.json), so it is refused, saying why.
    for program, data_flag in (
        ("eval.py", "--eval_data_pattern"),
        ("inference.py", "--input_data_pattern"),
    ):
        result = run_program(
            program,
            f"--train_dir={tmp_path}",
            f"{data_flag}={data_dir}/frame/test*",
            "--dcgn_shots=16",
            check=False,
        )
        assert result.returncode == 1
        assert "dcgn_shots" in result.stderr and "train.py" in result.stderr
        assert "Traceback" not in result.stderr


def test_frame_features_follow_the_model_and_a_contradiction_is_refused(
    data_dir, tmp_path
):
    args = [a for a in train_args(data_dir, tmp_path / "m") if a != "--frame_features"]
    run_program("train.py", *args, "--max_steps=2", "--noexport_model")
    config = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert config["frame_features"] is True
    result = run_program("train.py", *args, "--noframe_features", check=False)
    assert result.returncode == 1
    assert "frame-level model: add --frame_features" in result.stderr


@pytest.mark.parametrize(
    "program,args",
    [
        ("train.py", ["--batch_size=0"]),
        ("train.py", ["--batch_size=-4"]),
        ("eval.py", ["--eval_data_pattern=x", "--batch_size=0"]),
        (
            "inference.py",
            ["--input_data_pattern=x", "--output_file=y", "--batch_size=0"],
        ),
    ],
)
def test_a_batch_size_below_one_is_refused_by_name(program, args, data_dir, tmp_path):
    if program == "train.py":
        args = train_args(data_dir, tmp_path / "t") + args
    result = run_program(program, *args, check=False)
    assert result.returncode == 1
    assert "--batch_size=" in result.stderr and "at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def training_lines(stdout):
    return [line for line in stdout.splitlines() if line.startswith("training step")]


def without_log_setting():
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def test_epochs_count_from_the_first_run_and_the_eta_from_the_steady_rate(
    data_dir, tmp_path
):
    """64 records, batch 8, 2 epochs: 16 steps in all, however often the run
    is interrupted; the ETA needs no --max_steps, and the rate leaves out the
    first step (tracing, start-up). Nothing set in the environment, no
    TensorFlow C++ line comes before the program's own."""
    train_dir = tmp_path / "run"
    args = train_args(data_dir, train_dir, "FrameLevelLogisticModel", "--num_epochs=2")
    first = subprocess.run(
        [sys.executable, "train.py", *args, "--max_steps=5", "--log_steps=1"],
        cwd=ROOT,
        env=without_log_setting(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0 and first.stderr == "", first.stderr
    lines = training_lines(first.stdout)
    assert first.stdout.startswith(lines[0])
    assert lines[0].startswith("training step 1/5 |")
    assert "examples/s" not in lines[0] and "ETA" not in lines[0]
    assert all("examples/s" in line and "ETA" in line for line in lines[1:-1])
    resumed = run_program("train.py", *args, "--log_steps=1")
    assert "resuming from" in resumed.stdout
    lines = training_lines(resumed.stdout)
    assert lines[0].startswith("training step 6/16 |")
    assert lines[-1].startswith("training step 16/16 |")
    assert "ETA" in lines[1]
    summary = json.loads((train_dir / "training_summary.json").read_text())
    assert summary["final_step"] == 16


def test_help_is_quiet_too():
    helped = subprocess.run(
        [sys.executable, "eval.py", "--help"],
        cwd=ROOT,
        env=without_log_setting(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert helped.stderr == "" and helped.stdout.startswith("Evaluates checkpoints")


@pytest.mark.parametrize(
    "environment,argv,level",
    [
        ({}, [], "2"),
        ({"TF_CPP_MIN_LOG_LEVEL": "0"}, [], "0"),
        ({}, ["--verbosity=0"], "0"),
    ],
)
def test_an_explicit_log_setting_wins(environment, argv, level):
    env = without_log_setting()
    script = "import os, cli; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    result = subprocess.run(
        [sys.executable, "-c", script, *argv],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == level
