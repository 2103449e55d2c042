"""The benchmark scripts run end to end at a tiny size."""

import os
import sys

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks")
)

import accelerator  # noqa: E402

# Generates data and trains every model: the full suite only.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "extra", [[], ["--jit_compile", "--mixed_precision=mixed_bfloat16"]]
)
def test_accelerator_benchmark_times_every_model_both_ways(extra):
    args = accelerator.parse_args(
        [
            "--batch_size=8",
            "--frames=30",
            "--features=12",
            "--classes=10",
            "--filters=8",
            "--levels=2",
            "--steps=2",
            "--models=FrameLevelLogisticModel,LstmModel,DCGNModel:attention:9",
            "--dequantize_in_model",
            "--jit_compile",
            "--mixed_precision=mixed_bfloat16",
        ]
    )
    rows, table = accelerator.run(args)
    assert [row[0] for row in rows] == [
        "FrameLevelLogisticModel",
        "LstmModel",
        "DCGNModel:attention:9",
    ]
    assert all(memory > 0 and pipeline > 0 for _, memory, pipeline in rows)
    assert table.count("\n| ") == 4  # header and three models


def test_learning_harness_trains_every_row_and_writes_its_table():
    import argparse

    import dcgn_learning

    args = argparse.Namespace(
        tasks=["counting"],
        seeds=1,
        features=8,
        max_frames=60,
        noise=0.3,
        train_videos=48,
        test_videos=24,
        steps=2,
        batch_size=16,
        learning_rate=0.001,
        levels=2,
        filters=4,
        shots=9,
        output="",
    )
    args.rows = list(dcgn_learning.make_rows(args))
    rows, results = dcgn_learning.run(args)
    assert set(results) == {("counting", row) for row in args.rows}
    assert all(0.0 <= gaps[0] <= 1.0 for gaps in results.values())
    table = dcgn_learning.markdown(args, rows, results)
    for row in args.rows:
        assert f"| {rows[row][0]} |" in table


def test_precompute_benchmark_reports_both_worker_counts_against_a_plain_copy():
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(root, "benchmarks", "bench_precompute_shots.py"),
            "--videos=4",
            "--files=2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    lines = result.stdout.splitlines()[-5:]
    assert lines[0].startswith("4 videos") and "plain copy" in lines[1]
    assert "--num_workers=1" in lines[2] and "--num_workers=2" in lines[3]
    assert lines[-1].startswith("2 workers / 1 worker")
