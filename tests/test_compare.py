"""compare.py end to end at tiny size: results equal eval.py's, resume, replot.

The program runs in subprocesses, as a user runs it; its helpers are imported
(compare.py defines its flags only when run as a program).
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

import compare
from program_testing import ROOT, write_tiny_data

# Runs the programs in subprocesses or trains models: the full suite only.
pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODELS = (
    "Mean=FrameLevelLogisticModel,"
    "Bag 16=DbofModel:dbof_cluster_size=16:dbof_hidden_size=8:iterations=10"
)
METRICS = ("gap", "hit_at_one", "perr", "map", "loss", "num_examples", "step")


def python(*args, check=True):
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result


def compare_args(data_dir, output_dir, models=MODELS):
    return [
        "compare.py",
        f"--output_dir={output_dir}",
        f"--train_data_pattern={data_dir}/frame/train*",
        f"--eval_data_pattern={data_dir}/frame/validate*",
        f"--models={models}",
        "--max_steps=4",
        "--eval_every_steps=2",
        "--batch_size=8",
        "--eval_batch_size=16",
        "--train_flags=--max_frames=40 --num_classes=20",
        "--",
        "--feature_sizes=8,4",
        "--moe_num_mixtures=1",
    ]


@pytest.fixture(scope="module")
def scratch():
    # Not tmp_dir_factory: pytest keeps only the newest three base temp
    # directories, and other pytest runs on a shared machine rotate them away
    # while these slow module fixtures are still in use.
    with tempfile.TemporaryDirectory(prefix="test_compare-") as directory:
        yield pathlib.Path(directory)


@pytest.fixture
def tmp_dir(scratch, request):
    directory = scratch / request.node.name
    directory.mkdir()
    return directory


@pytest.fixture(scope="module")
def data_dir(scratch):
    directory = scratch / "data"
    write_tiny_data(
        directory,
        seed=5,
        num_train=32,
        num_validate=12,
        num_test=0,
        num_classes=20,
        levels=["frame"],
    )
    return directory


@pytest.fixture(scope="module")
def compared(data_dir, scratch):
    output_dir = scratch / "compare"
    result = python(*compare_args(data_dir, output_dir))
    return output_dir, result.stdout


def checkpoint_mtimes(output_dir):
    return {
        os.path.join(dirpath, name): os.stat(os.path.join(dirpath, name)).st_mtime_ns
        for dirpath, _, names in os.walk(output_dir)
        for name in names
        if name.startswith("ckpt-")
    }


def test_runs_every_model_in_chunks_and_writes_table_json_and_plots(compared):
    output_dir, stdout = compared
    results = json.loads((output_dir / "results.json").read_text())
    labels = [model["label"] for model in results["models"]]
    assert labels == ["Mean", "Bag 16"]
    for model in results["models"]:
        assert [point["step"] for point in model["curve"]] == [2, 4]
        assert model["final"] == model["curve"][-1]
        assert model["parameters"] > 0
        assert model["train_examples_per_second"] > 0
        assert model["inference_examples_per_second"] > 0
        assert model["final"]["num_examples"] == 12
    assert results["models"][1]["overrides"] == {
        "dbof_cluster_size": "16",
        "dbof_hidden_size": "8",
        "iterations": "10",
    }
    # Shared flags from --train_flags and after -- reached train.py.
    config = json.loads((output_dir / "bag_16" / "model_config.json").read_text())
    assert config["num_classes"] == 20 and config["feature_sizes"] == [8, 4]
    assert config["body"]["dbof_cluster_size"] == 16
    assert config["head"]["moe_num_mixtures"] == 1
    assert "[2/2] Bag 16: chunk 2/2, steps 2->4" in stdout and "ETA" in stdout

    table = (output_dir / "results.md").read_text()
    for model in results["models"]:
        final = model["final"]
        row = next(
            line
            for line in table.splitlines()
            if line.startswith(f"| {model['label']} |")
        )
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:6] == [
            f"{100 * final['gap']:.2f}",
            f"{100 * final['hit_at_one']:.2f}",
            f"{final['loss']:.3f}",
            f"{100 * final['perr']:.2f}",
            f"{100 * final['map']:.2f}",
        ]
        assert cells[6] == f"{model['parameters']:,}"
    for name in ("gap_hit1.png", "gap_vs_steps.png"):
        data = (output_dir / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_numbers_equal_what_eval_py_reports_for_the_final_checkpoints(
    compared, data_dir, tmp_dir
):
    output_dir, _ = compared
    results = json.loads((output_dir / "results.json").read_text())
    for model in results["models"]:
        own = tmp_dir / f"{model['slug']}.json"
        python(
            "eval.py",
            f"--train_dir={model['train_dir']}",
            f"--eval_data_pattern={data_dir}/frame/validate*",
            "--batch_size=5",
            "--run_once",
            f"--eval_results_file={own}",
        )
        reported = json.loads(own.read_text())
        for key in METRICS:
            assert model["final"][key] == pytest.approx(reported[key], abs=1e-5), key


def test_a_rerun_skips_finished_models_and_resumes_the_unfinished(compared, data_dir):
    output_dir, _ = compared
    before = json.loads((output_dir / "results.json").read_text())
    mtimes = checkpoint_mtimes(output_dir)
    # As if interrupted after Bag 16's last chunk trained, before its eval.
    (output_dir / "bag_16" / "result.json").unlink()
    (output_dir / "bag_16" / "eval" / "step_4.json").unlink()
    out = python(*compare_args(data_dir, output_dir)).stdout
    assert "[1/2] Mean: skipped, finished earlier" in out
    assert "[2/2] Bag 16: resuming from the checkpoint at step 4" in out
    assert "evaluating step 4" in out and "steps 2->4" not in out
    assert checkpoint_mtimes(output_dir) == mtimes
    after = json.loads((output_dir / "results.json").read_text())
    for old, new in zip(before["models"], after["models"]):
        for key in METRICS:
            assert new["final"][key] == pytest.approx(old["final"][key], abs=1e-6)


def test_replot_needs_only_the_json_and_no_tensorflow(compared, tmp_dir):
    output_dir, _ = compared
    source = tmp_dir / "results.json"
    source.write_text((output_dir / "results.json").read_text())
    script = (
        "import sys, compare\n"
        f"compare.compare_report.replot({str(source)!r})\n"
        "print('tensorflow loaded:', 'tensorflow' in sys.modules)\n"
    )
    out = python("-c", script).stdout
    assert "tensorflow loaded: False" in out
    assert (tmp_dir / "results.md").read_text() == (
        output_dir / "results.md"
    ).read_text()
    for name in ("gap_hit1.png", "gap_vs_steps.png"):
        assert (tmp_dir / name).read_bytes().startswith(PNG_SIGNATURE)
    # The command line form too, into another directory.
    other = tmp_dir / "other"
    python("compare.py", f"--replot_from={source}", f"--output_dir={other}")
    assert (other / "gap_vs_steps.png").read_bytes().startswith(PNG_SIGNATURE)


def test_replotting_a_shipped_table_leaves_the_checkout_alone(tmp_dir):
    # The README's command, from a directory of the user's: the table and
    # plots go to runs/replot/<name>/ there, never into docs/.
    docs = os.path.join(ROOT, "docs")
    before = {
        name: os.path.getmtime(os.path.join(docs, name)) for name in os.listdir(docs)
    }
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "compare.py"),
            f"--replot_from={os.path.join(docs, 'comparison-synth.json')}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_dir,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert {
        name: os.path.getmtime(os.path.join(docs, name)) for name in os.listdir(docs)
    } == before
    written = tmp_dir / "runs" / "replot" / "comparison-synth"
    assert "DCGN" in (written / "results.md").read_text()
    assert (written / "gap_hit1.png").read_bytes().startswith(PNG_SIGNATURE)


def test_model_entries_parse_with_labels_and_per_model_flags():
    entries = compare.parse_models(
        "LstmModel:lstm_cells=64, My DCGN=DCGNModel:dcgn_shots=16"
    )
    assert entries[0]["label"] == "LstmModel lstm_cells=64"
    assert entries[0]["overrides"] == {"lstm_cells": "64"}
    assert entries[1] == {
        "label": "My DCGN",
        "slug": "my_dcgn",
        "model": "DCGNModel",
        "overrides": {"dcgn_shots": "16"},
    }


def test_bad_flags_get_clear_errors(data_dir, tmp_dir):
    cases = [
        (
            compare_args(data_dir, tmp_dir / "a", "NoSuchModel"),
            ["--models", "'NoSuchModel'", "DCGNModel"],
        ),
        (
            compare_args(data_dir, tmp_dir / "b", "DCGNModel:max_steps=3"),
            ["--models", "max_steps", "set by compare.py"],
        ),
        (
            compare_args(tmp_dir / "nothing", tmp_dir / "c"),
            ["--train_data_pattern", "No file matches"],
        ),
        (
            compare_args(data_dir, tmp_dir / "d", "A=LstmModel,A=GruModel"),
            ["--models", "distinct labels"],
        ),
        (["compare.py", f"--replot_from={tmp_dir}/none.json"], ["--replot_from"]),
    ]
    for args, expected in cases:
        result = python(*args, check=False)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        for text in expected:
            assert text in result.stderr, (text, result.stderr)
    assert not (tmp_dir / "a" / "results.json").exists()
