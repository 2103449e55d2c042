"""Files that are either whole or absent: write under a temporary name, rename.

A crash (even SIGKILL) mid-write leaves the previous file, or none, never a
file that looks complete. A leaf module without TensorFlow, so compare.py
can use it too.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_open(path):
    """Opens a text file for writing that appears at `path` only when closed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = tempfile.NamedTemporaryFile(
        "w",
        dir=directory,
        delete=False,
        prefix=".tmp-",
        suffix=os.path.splitext(path)[1],
    )
    try:
        with tmp:
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, path)
    except BaseException:
        os.remove(tmp.name)
        raise


def atomic_write(path, text):
    """Writes `text` to `path`, whole or not at all."""
    with atomic_open(path) as f:
        f.write(text)
