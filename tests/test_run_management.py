"""A run's life through the programs: resuming with changed settings, starting
over, eval following training, compressed data, and the CSV's ids."""

import csv
import glob
import os
import re

import pytest
import tensorflow as tf

from program_testing import run_program, train_args, write_tiny_data

# Runs the programs in subprocesses: the full suite only.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    write_tiny_data(directory, seed=11, num_test=0)
    return directory


def avg_loss(stdout):
    return float(re.search(r"Avg_Loss: ([0-9.]+)", stdout).group(1))


def test_changed_settings_resume_only_when_allowed(data, tmp_path):
    run_dir = tmp_path / "run"
    run_program(
        "train.py",
        *train_args(data, run_dir, "FrameLevelLogisticModel", "--max_steps=2"),
    )
    args = train_args(
        data,
        run_dir,
        "FrameLevelLogisticModel",
        "--max_steps=4",
        "--base_learning_rate=0.1",
    )
    refused = run_program("train.py", *args, check=False)
    assert refused.returncode == 1
    assert "--base_learning_rate: 0.01 in the run so far, 0.1 now" in refused.stderr
    allowed = run_program("train.py", *args, "--allow_changed_settings")
    assert "resuming from" in allowed.stdout and "training step 4" in allowed.stdout
    assert (
        "changed settings" in allowed.stderr and "base_learning_rate" in allowed.stderr
    )
    # The new value is the run's from now on: resuming with it needs no flag.
    run_program("train.py", *args[:-2], "--max_steps=6", "--base_learning_rate=0.1")


def test_start_new_model_leaves_nothing_of_the_old_run(data, tmp_path):
    run_dir = tmp_path / "run"
    run_program(
        "train.py",
        *train_args(data, run_dir, "FrameLevelLogisticModel", "--max_steps=4"),
    )
    run_program(
        "eval.py",
        f"--train_dir={run_dir}",
        f"--eval_data_pattern={data}/frame/validate*",
        "--run_once",
    )
    assert (run_dir / "export" / "step_4").is_dir()
    result = run_program(
        "train.py",
        *train_args(data, run_dir, "FrameLevelLogisticModel", "--max_steps=2"),
        "--start_new_model",
    )
    assert "--start_new_model: removed" in result.stdout
    assert sorted(os.listdir(run_dir / "export")) == ["step_2"]
    assert not (run_dir / "eval").exists()
    assert len(glob.glob(str(run_dir / "events.out.tfevents.*"))) == 1
    assert tf.train.latest_checkpoint(str(run_dir)).endswith("ckpt-2")


def test_eval_reports_the_training_loss_and_writes_summaries(data, tmp_path):
    run_dir = tmp_path / "run"
    run_program(
        "train.py",
        *train_args(
            data,
            run_dir,
            "FrameLevelLogisticModel",
            "--max_steps=2",
            "--label_loss=HingeLoss",
        ),
    )
    base = [
        f"--train_dir={run_dir}",
        f"--eval_data_pattern={data}/frame/validate*",
        "--run_once",
    ]
    default = avg_loss(run_program("eval.py", *base).stdout)
    hinge = avg_loss(run_program("eval.py", *base, "--label_loss=HingeLoss").stdout)
    cross = avg_loss(
        run_program("eval.py", *base, "--label_loss=CrossEntropyLoss").stdout
    )
    assert default == hinge != cross
    events = glob.glob(str(run_dir / "eval" / "events.out.tfevents.*"))
    assert events
    tags = {
        value.tag
        for path in events
        for event in tf.compat.v1.train.summary_iterator(path)
        for value in event.summary.value
    }
    assert {"eval/gap", "eval/hit_at_one", "eval/map", "eval/loss"} <= tags


def test_gzip_records_are_read_with_the_flag(data, tmp_path):
    gz = tmp_path / "gz"
    gz.mkdir()
    for path in sorted(glob.glob(f"{data}/frame/*.tfrecord")):
        with tf.io.TFRecordWriter(str(gz / os.path.basename(path)), "GZIP") as writer:
            for record in tf.data.TFRecordDataset(path):
                writer.write(record.numpy())
    run_dir = tmp_path / "run"
    args = train_args(data, run_dir, "FrameLevelLogisticModel", "--max_steps=2")
    args = [a for a in args if not a.startswith("--train_data_pattern")]
    trained = run_program(
        "train.py",
        *args,
        f"--train_data_pattern={gz}/train*.tfrecord",
        "--compression_type=GZIP",
    )
    assert "training step 2" in trained.stdout
    evals = [
        run_program(
            "eval.py", f"--train_dir={run_dir}", "--run_once", *extra
        ).stdout.splitlines()[-1]
        for extra in (
            [f"--eval_data_pattern={data}/frame/validate*"],
            [f"--eval_data_pattern={gz}/validate*", "--compression_type=GZIP"],
        )
    ]
    # The same records: the same metrics, digit for digit.
    assert evals[0] == evals[1] and "examples" in evals[0]


def test_csv_quotes_ids_that_need_it_and_reports_duplicates(data, tmp_path):
    run_dir = tmp_path / "run"
    run_program(
        "train.py",
        *train_args(data, run_dir, "FrameLevelLogisticModel", "--max_steps=2"),
    )
    ids = ["plain_id", "with,comma", 'with"quote', "with\nnewline", "plain_id"]
    records = []
    for path in sorted(glob.glob(f"{data}/frame/validate*.tfrecord")):
        records += [r.numpy() for r in tf.data.TFRecordDataset(path)]
    odd = tmp_path / "odd.tfrecord"
    with tf.io.TFRecordWriter(str(odd)) as writer:
        for video_id, record in zip(ids, records):
            example = tf.train.SequenceExample.FromString(record)
            example.context.feature["id"].bytes_list.value[:] = [video_id.encode()]
            writer.write(example.SerializeToString())
    out = tmp_path / "submission.csv"
    result = run_program(
        "inference.py",
        f"--train_dir={run_dir}",
        f"--input_data_pattern={odd}",
        f"--output_file={out}",
    )
    assert "1 video id(s) occur more than once" in result.stderr
    assert "plain_id" in result.stderr
    text = out.read_text()
    assert text.splitlines()[1].startswith("plain_id,")  # unquoted, as the starter
    rows = list(csv.reader(text.splitlines(keepends=True)))
    assert rows[0] == ["VideoId", "LabelConfidencePairs"]
    assert [row[0] for row in rows[1:]] == ids
    assert all(len(row) == 2 and len(row[1].split()) == 40 for row in rows[1:])


def test_export_model_steps_exports_along_the_way(data, tmp_path):
    run_dir = tmp_path / "run"
    out = run_program(
        "train.py",
        *train_args(data, run_dir, "FrameLevelLogisticModel", "--max_steps=5"),
        "--export_model_steps=2",
        "--num_gpu=0",
    )
    assert sorted(os.listdir(run_dir / "export")) == ["step_2", "step_4", "step_5"]
    assert out.stdout.count("exported") == 3
