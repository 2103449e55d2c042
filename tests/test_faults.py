"""Faults: training killed with SIGKILL again and again, inference killed
mid-way, and places the programs cannot write to."""

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from program_testing import ROOT, run_program, train_args

# Runs the programs in subprocesses or trains models: the full suite only.
pytestmark = pytest.mark.slow

MAX_STEPS = 60
KILLS = 10
# Stops by SIGTERM or SIGINT: each kind both during start-up and mid-run.
STOPS = 6


def start(program, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, os.path.join(ROOT, program), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def lines_of(process):
    """A queue that receives the process's stdout lines, then None."""
    lines = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines, text, deadline):
    """True once a line holds `text`; False when the output ended first."""
    while time.time() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.time()))
        except queue.Empty:
            break
        if line is None:
            return False
        if text in line:
            return True
    raise AssertionError(f"no {text!r} before the deadline")


def check_checkpoint(train_dir):
    """The latest checkpoint's step; every tensor in it must read back."""
    latest = tf.train.latest_checkpoint(str(train_dir))
    if latest is None:
        return 0
    reader = tf.train.load_checkpoint(latest)
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)
    return int(latest.rsplit("-", 1)[1])


def test_training_killed_ten_times_resumes_and_completes(data_dir, tmp_path):
    train_dir = tmp_path / "run"
    args = train_args(
        data_dir,
        train_dir,
        "FrameLevelLogisticModel",
        f"--max_steps={MAX_STEPS}",
        "--num_epochs=1000",
        # A save after every step: most kills land in or near one.
        "--save_checkpoint_steps=1",
        "--keep_checkpoint_max=2",
        "--log_steps=1",
    )
    # Kill points vary with the seed; rerun a failure with the seed it names.
    seed = int(os.environ.get("KILL_TEST_SEED", "0"))
    rng = random.Random(seed)
    steps = [0]
    for kill in range(KILLS):
        process = start("train.py", *args)
        lines = lines_of(process)
        try:
            if kill % 2:
                # Somewhere while it trains and saves.
                if wait_for_line(lines, "training step", time.time() + 120):
                    time.sleep(rng.uniform(0.0, 0.5))
            else:
                # Somewhere in start-up: imports, restore, the first trace.
                time.sleep(rng.uniform(0.5, 6.0))
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        step = check_checkpoint(train_dir)
        assert step >= steps[-1], f"KILL_TEST_SEED={seed}: step went back {steps}"
        steps.append(step)
    assert steps[-1] > 0, f"KILL_TEST_SEED={seed}: no kill came after a save: {steps}"

    out = run_program("train.py", *args)
    if steps[-1] < MAX_STEPS:
        assert "resuming from" in out.stdout
    assert check_checkpoint(train_dir) == MAX_STEPS
    assert (train_dir / "export" / f"step_{MAX_STEPS}" / "saved_model.pb").exists()
    out = run_program(
        "eval.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={data_dir}/frame/validate*",
        "--run_once",
    )
    assert f"step {MAX_STEPS} | examples 24" in out.stdout


def reported_steps(lines, deadline):
    """Steps of the 'training step N' lines until the output ends."""
    steps, rest = [], []
    while time.time() < deadline:
        line = lines.get(timeout=max(0.0, deadline - time.time()))
        if line is None:
            return steps, "".join(rest)
        rest.append(line)
        if line.startswith("training step "):
            steps.append(int(line.split()[2].split("/")[0]))
    raise AssertionError("the program did not stop")


def test_sigterm_and_sigint_checkpoint_the_reported_step(data_dir, tmp_path):
    train_dir = tmp_path / "run"
    args = train_args(
        data_dir,
        train_dir,
        "FrameLevelLogisticModel",
        "--max_steps=100000",
        "--num_epochs=100000",
        "--log_steps=1",
    )
    seed = int(os.environ.get("KILL_TEST_SEED", "0"))
    rng = random.Random(seed)
    done = 0  # the last step a run reported
    for stop in range(STOPS):
        number = signal.SIGINT if stop >= STOPS - 2 else signal.SIGTERM
        process = start("train.py", *args)
        lines = lines_of(process)
        before = []
        if stop % 2:
            time.sleep(rng.uniform(0.5, 12.0))  # start-up, or its first steps
        else:
            while not before:
                line = lines.get(timeout=120)
                assert line is not None, "train.py ended before its first step"
                if line.startswith("training step "):
                    before.append(int(line.split()[2].split("/")[0]))
            time.sleep(rng.uniform(0.0, 0.5))
        process.send_signal(number)
        steps, text = reported_steps(lines, time.time() + 120)
        process.wait()
        steps = before + steps
        where = f"KILL_TEST_SEED={seed}, stop {stop}"
        if process.returncode == -number:
            # Before training began, the signal acts as always: no step ran.
            assert not steps, where
            continue
        assert process.returncode == 128 + number, (where, process.returncode, text)
        saved = check_checkpoint(train_dir)
        assert steps and saved == steps[-1] > done, (where, steps, saved)
        assert f"stopped by {number.name} after step {saved}" in text, where
        done = saved
    assert done > 0
    out = run_program("train.py", *args[:-3], f"--max_steps={done + 2}")
    assert "resuming from" in out.stdout and f"at step {done}" in out.stdout


def kill_while_writing(args, out_dir):
    """Starts inference.py and kills it once its temporary file exists."""
    process = start("inference.py", *args)
    deadline = time.time() + 120
    try:
        while process.poll() is None and time.time() < deadline:
            if any(name.startswith(".tmp-") for name in os.listdir(out_dir)):
                break
            time.sleep(0.005)
        assert process.poll() is None, "inference ended before it could be killed"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_killed_inference_never_leaves_a_csv_that_looks_complete(data_dir, tmp_path):
    train_dir = tmp_path / "run"
    run_program(
        "train.py",
        *train_args(data_dir, train_dir, "FrameLevelLogisticModel", "--max_steps=1"),
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "submission.csv"
    args = [
        f"--train_dir={train_dir}",
        f"--input_data_pattern={data_dir}/frame/test*",
        f"--output_file={output}",
        "--batch_size=1",
    ]

    kill_while_writing(args, out_dir)
    assert not output.exists()

    run_program("inference.py", *args)
    complete = output.read_bytes()
    assert complete.count(b"\n") == 21  # header + 20 videos
    kill_while_writing(args, out_dir)
    assert output.read_bytes() == complete


@pytest.mark.parametrize(
    "program,flag,where",
    [
        ("train.py", "--train_dir", "under_a_file"),
        ("eval.py", "--eval_results_file", "under_a_file"),
        ("inference.py", "--output_file", "proc"),
    ],
)
def test_unwritable_places_are_refused_at_start(
    data_dir, tmp_path, program, flag, where
):
    # Root ignores file modes, so the places are ones no user can write to: a
    # directory path through a regular file, and /proc.
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = (
        f"{blocker}/sub/results.json"
        if where == "under_a_file"
        else "/proc/yt8m_test/out.csv"
    )
    if program == "train.py":
        target = os.path.dirname(target)
        args = train_args(data_dir, target, "FrameLevelLogisticModel", "--max_steps=1")
    elif program == "eval.py":
        args = [
            f"--train_dir={tmp_path}",
            f"--eval_data_pattern={data_dir}/frame/validate*",
            "--run_once",
            f"{flag}={target}",
        ]
    else:
        args = [
            f"--train_dir={tmp_path}",
            f"--input_data_pattern={data_dir}/frame/test*",
            f"{flag}={target}",
        ]
    result = run_program(program, *args, check=False)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "is not writable" in error[0], result.stderr[-2000:]
    assert os.path.dirname(target) in error[0]
    assert "training step" not in result.stdout
