"""Shared test setup: quiet TensorFlow, the project importable, shared fixtures."""

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from program_testing import write_tiny_data  # noqa: E402


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Tiny generated frame- and video-level shards (train/validate/test)."""
    directory = tmp_path_factory.mktemp("data")
    write_tiny_data(directory, seed=3, num_train=64, num_validate=24, num_test=20)
    return directory
