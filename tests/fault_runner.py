"""Runs one of the project's programs with a fault injected at a write.

    python tests/fault_runner.py FAULT program.py [flags...]

FAULT is one of:
  checkpoint:N  the Nth checkpoint save fails as TensorFlow's does on a full
                disk, leaving its ckpt-M_temp staging directory behind;
  export        the SavedModel write fails with ENOSPC after a first file;
  csv:N         the CSV file's Nth write fails with ENOSPC;
  free:BYTES    the disk reports BYTES free.
A full disk cannot be made on every machine a test runs on; this reproduces
what the writers see when it happens, at the same calls.
"""

import collections
import contextlib
import errno
import os
import runpy
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import atomic_files  # noqa: E402

NO_SPACE = "No space left on device"


def full_disk_error():
    return OSError(errno.ENOSPC, NO_SPACE)


def fail_checkpoint(n):
    real = tf.train.CheckpointManager.save
    calls = [0]

    def save(self, checkpoint_number=None, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            staging = os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp")
            os.makedirs(staging, exist_ok=True)
            open(os.path.join(staging, "part-00000-of-00001.data"), "wb").close()
            raise tf.errors.ResourceExhaustedError(
                None,
                None,
                f"{staging}/part-00000-of-00001.data; {NO_SPACE} [Op:SaveV2]",
            )
        return real(self, checkpoint_number=checkpoint_number, **kwargs)

    tf.train.CheckpointManager.save = save


def fail_export():
    def save(obj, export_dir, **kwargs):
        del obj, kwargs
        open(os.path.join(export_dir, "saved_model.pb"), "wb").close()
        raise full_disk_error()

    tf.saved_model.save = save


class _FullAfter:
    def __init__(self, file, writes):
        self._file, self._left = file, writes

    def write(self, text):
        self._left -= 1
        if self._left <= 0:
            raise full_disk_error()
        return self._file.write(text)

    def __getattr__(self, name):
        return getattr(self._file, name)


def fail_csv(n):
    real = atomic_files.atomic_open

    @contextlib.contextmanager
    def atomic_open(path):
        with real(path) as f:
            yield _FullAfter(f, n)

    atomic_files.atomic_open = atomic_open


def report_free(free):
    usage = collections.namedtuple("usage", "total used free")
    shutil.disk_usage = lambda path: usage(free * 2, free, free)


def main():
    fault, program, *args = sys.argv[1:]
    kind, _, value = fault.partition(":")
    {
        "checkpoint": lambda: fail_checkpoint(int(value)),
        "export": fail_export,
        "csv": lambda: fail_csv(int(value)),
        "free": lambda: report_free(int(value)),
    }[kind]()
    sys.argv = [program, *args]
    runpy.run_path(os.path.join(ROOT, program), run_name="__main__")


if __name__ == "__main__":
    main()
