"""The segment-level workflow through the programs, as the 2019 README runs
it: train on videos, eval.py --segment_labels, inference.py --segment_labels,
segment_eval_inference.py."""

import json
import os
import re

import pytest

from program_testing import run_program, train_args, write_tiny_data
from test_faults import kill_while_writing

# Runs the programs in subprocesses: the full suite only.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("segments")
    train_dir = root / "run"
    run_program(
        "train.py",
        *train_args(data_dir, train_dir, "DCGNModel", "--max_steps=3"),
        "--dcgn_levels=2",
        "--dcgn_filters=8",
        "--dcgn_shots=9",
    )
    whitelist = root / "classes.csv"
    whitelist.write_text("Index\n" + "".join(f"{c}\n" for c in range(0, 40, 3)))
    return root, train_dir, whitelist


def segment_inference(data_dir, train_dir, whitelist, output, *extra):
    return [
        f"--train_dir={train_dir}",
        f"--input_data_pattern={data_dir}/frame/validate*",
        f"--output_file={output}",
        "--segment_labels",
        f"--segment_label_ids_file={whitelist}",
        *extra,
    ]


def test_segment_workflow_end_to_end(data_dir, trained):
    root, train_dir, whitelist = trained
    results = root / "eval.json"
    evaluation = run_program(
        "eval.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={data_dir}/frame/validate*",
        "--segment_labels",
        "--run_once",
        f"--eval_results_file={results}",
    )
    metrics = json.loads(results.read_text())
    assert 0 < metrics["num_examples"] <= 24 * 5 * 3
    assert f"examples {metrics['num_examples']}" in evaluation.stdout
    assert os.listdir(train_dir / "eval")

    submission = root / "segments.csv"
    predicted = run_program(
        "inference.py",
        *segment_inference(
            data_dir, train_dir, whitelist, submission, "--batch_size=16"
        ),
    )
    # Segment counts are not known before the read: done and rate only.
    assert re.search(r"^\d+ segments \| [0-9.]+ segments/s$", predicted.stdout, re.M)
    lines = submission.read_text().splitlines()
    assert lines[0] == "Class,Segments"
    classes = [int(line.split(",")[0]) for line in lines[1:]]
    assert classes == sorted(classes) and set(classes) <= set(range(0, 40, 3))
    for line in lines[1:]:
        for segment in line.split(",")[1].split():
            video, start = segment.split(":")
            assert video.startswith("g") and int(start) % 5 == 0

    cache = root / "labels.cache"
    scores = []
    for _ in range(2):  # the second run reads the cache
        out = run_program(
            "segment_eval_inference.py",
            f"--eval_data_pattern={data_dir}/frame/validate*",
            f"--submission_file={submission}",
            "--top_n=100",
            f"--label_cache={cache}",
            f"--eval_results_file={root / 'map.json'}",
        )
        scores.append(re.search(r"mAP@100: ([0-9.]+)", out.stdout).group(1))
        assert cache.exists()
    assert scores[0] == scores[1]
    result = json.loads((root / "map.json").read_text())
    assert set(result) == {"map_at_n", "top_n", "num_classes", "num_rated"}
    assert 0.0 <= result["map_at_n"] <= 1.0 and result["top_n"] == 100


def test_a_bundled_model_predicts_the_same_submission(data_dir, trained):
    root, train_dir, whitelist = trained
    bundle = root / "model.tgz"
    first, second = root / "first.csv", root / "second.csv"
    run_program(
        "inference.py",
        *segment_inference(data_dir, train_dir, whitelist, first),
        f"--output_model_tgz={bundle}",
    )
    args = segment_inference(data_dir, train_dir, whitelist, second)
    args = [a for a in args if not a.startswith("--train_dir")]
    run_program(
        "inference.py",
        *args,
        f"--input_model_tgz={bundle}",
        f"--untar_model_dir={root / 'unpacked'}",
    )
    assert first.read_bytes() == second.read_bytes()


def test_the_default_whitelist_needs_the_full_vocabulary(data_dir, trained):
    root, train_dir, _ = trained
    args = segment_inference(data_dir, train_dir, "x", root / "none.csv")[:-1]
    result = run_program("inference.py", *args, check=False)
    assert result.returncode == 1
    assert "outside the model's 40 classes" in result.stderr
    assert not (root / "none.csv").exists()


def test_killed_segment_inference_leaves_no_csv(data_dir, trained):
    root, train_dir, whitelist = trained
    out_dir = root / "killed"
    out_dir.mkdir()
    output = out_dir / "segments.csv"
    args = segment_inference(data_dir, train_dir, whitelist, output, "--batch_size=1")
    kill_while_writing(args, out_dir)
    assert not output.exists()


def segment_map(train_dir, data):
    results = train_dir / "segments.json"
    run_program(
        "eval.py",
        f"--train_dir={train_dir}",
        f"--eval_data_pattern={data}/frame/validate*",
        "--segment_labels",
        "--run_once",
        f"--eval_results_file={results}",
    )
    return json.loads(results.read_text())["map"]


def test_fine_tuning_on_rated_segments_raises_segment_map(tmp_path):
    """train.py --segment_labels continues a video-trained run on the rated
    segments (rated class positive or negative, the others out of the loss),
    as the best 2019 entries did; the segment mAP on held-out videos rises."""
    data = tmp_path / "data"
    write_tiny_data(
        data,
        seed=3,
        num_train=120,
        num_validate=60,
        num_test=4,
        rated_splits=("train", "validate", "test"),
    )
    train_dir = tmp_path / "run"
    args = train_args(data, train_dir, "FrameLevelLogisticModel", "--batch_size=16")
    run_program("train.py", *args, "--max_steps=36", "--export_model=false")
    start = segment_map(train_dir, data)
    tuned = run_program("train.py", *args, "--max_steps=72", "--segment_labels")
    assert "resuming from" in tuned.stdout and "training step 72" in tuned.stdout
    # The export still serves whole videos.
    assert (train_dir / "export" / "step_72" / "saved_model.pb").exists()
    after = segment_map(train_dir, data)
    assert after > start + 0.03, (start, after)
