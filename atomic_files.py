"""Files that are either whole or absent: write under a temporary name, rename.

A crash (even SIGKILL) mid-write leaves the previous file, or none, never a
file that looks complete. A leaf module without TensorFlow, so compare.py
can use it too.
"""

import contextlib
import os
import tempfile


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
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
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
