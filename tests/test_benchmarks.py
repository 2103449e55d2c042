"""The accelerator benchmark runs end to end at a tiny size."""

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
