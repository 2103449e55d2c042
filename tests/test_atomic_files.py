"""atomic_files: a file at the final name is always whole."""

import os

import pytest

import atomic_files


def test_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "sub" / "out.json"
    atomic_files.atomic_write(str(path), "first\n")
    atomic_files.atomic_write(str(path), "second\n")
    assert path.read_text() == "second\n"
    assert os.listdir(path.parent) == ["out.json"]


def test_a_failure_mid_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("complete\n")
    with pytest.raises(RuntimeError):
        with atomic_files.atomic_open(str(path)) as f:
            f.write("half a fi")
            raise RuntimeError("killed")
    assert path.read_text() == "complete\n"
    assert os.listdir(tmp_path) == ["out.csv"]
