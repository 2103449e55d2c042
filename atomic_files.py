"""Files that are either whole or absent: write under a temporary name, rename.

A crash (even SIGKILL) mid-write leaves the previous file, or none, never a
file that looks complete; a full disk becomes one error (`DiskFull`) that
names the file and says what is intact. Imports no TensorFlow, so
compare.py can use it too.
"""

import contextlib
import errno
import os
import tempfile

from cli import UsageError


class DiskFull(UsageError):
    """A write failed for lack of space; the message says what survived."""


def is_disk_full(error):
    """An OSError of a full disk or quota, or TensorFlow's error for one.

    TensorFlow's file errors carry the operating system's text, not errno.
    """
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text


def disk_full(directory, what, kept):
    """The DiskFull error: where, what was being written, what is intact."""
    return DiskFull(
        f"no space left on the disk of {directory} while writing {what}; "
        f"{kept} Free some space (or use another directory) and run the same "
        "command again."
    )


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path`; renamed to `path` when the block ends.

    For writers that want a file name (tf.io.TFRecordWriter). If the block
    raises, the temporary file is removed and `path` is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1]
    )
    os.close(fd)
    # mkstemp makes the file private (0600); the final file gets the mode a
    # plain open() would give, so a shared results folder can read it.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(error, Exception) and is_disk_full(error):
            kept = (
                f"the previous {os.path.basename(path)} is intact."
                if os.path.exists(path)
                else "nothing half-written was left."
            )
            raise disk_full(directory, path, kept) from None
        raise


@contextlib.contextmanager
def atomic_open(path):
    """Opens a text file for writing that appears at `path` only when closed."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write(path, text):
    """Writes `text` to `path`, whole or not at all."""
    with atomic_open(path) as f:
        f.write(text)
