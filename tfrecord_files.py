"""TFRecord files without TensorFlow: globs, record framing, CRC, counts.

The readers, precompute_shots.py and compare.py all find and check files
through this module; compare.py stays free of TensorFlow with it. Only
paths with a scheme (gs://, s3://...) need TensorFlow's file system, which
is imported for them alone.

TFRecord framing: each record is `uint64 length`, `uint32 masked CRC-32C of
the length`, `length` payload bytes, `uint32 masked CRC-32C of the payload`,
little-endian.
"""

import glob
import os
import struct

from cli import UsageError

PATTERN_HINT = (
    "the data pattern flag (--train_data_pattern, --eval_data_pattern or "
    "--input_data_pattern)"
)


class ReaderError(UsageError):
    """The data does not fit the reader's settings; the message says how."""


def _glob(pattern):
    if "://" in pattern:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        return tf.io.gfile.glob(pattern)
    return glob.glob(os.path.expanduser(pattern))


def _is_directory(path):
    if "://" in path:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def match_files(data_pattern, flag=None):
    """Sorted file names matching a (comma-separated) glob pattern.

    Directories a glob matches are left out.

    Raises:
      ReaderError: nothing matches, or only directories do, naming `flag`
        when given.
    """
    matches = set()
    for pattern in str(data_pattern).split(","):
        if pattern.strip():
            matches.update(_glob(pattern.strip()))
    what = f"--{flag}" if flag else PATTERN_HINT
    files = {path for path in matches if not _is_directory(path)}
    if matches and not files:
        first = sorted(matches)[0].rstrip("/")
        raise ReaderError(
            f"The data pattern {data_pattern!r} matches only directories "
            f"({first}{', ...' if len(matches) > 1 else ''}). Check {what}: give a "
            f"glob of the files in it, such as '{first}/*.tfrecord'."
        )
    if not files:
        raise ReaderError(
            f"No file matches the data pattern {data_pattern!r}. Check {what}: it "
            "is a glob such as '/data/yt8m/frame/train*.tfrecord', and the files "
            "must exist."
        )
    return sorted(files)


COMPRESSION_TYPES = ("", "GZIP", "ZLIB")
_GZIP_MAGIC = b"\x1f\x8b"


def check_compression(files, compression_type):
    """A ReaderError when the files' compression is not the one given.

    gzip is told by its magic bytes; ZLIB streams have no reliable mark (an
    uncompressed TFRecord may start with the same byte), so --compression_type
    =ZLIB is taken on trust.
    """
    for path in files:
        with _open(path) as f:
            gzipped = f.read(2) == _GZIP_MAGIC
        if gzipped and compression_type != "GZIP":
            raise ReaderError(
                f"{path} is gzip-compressed: pass --compression_type=GZIP to read "
                "it (or decompress the files with gunzip)."
            )
        if compression_type == "GZIP" and not gzipped:
            raise ReaderError(
                f"{path} is not gzip-compressed, but --compression_type=GZIP was "
                "given: drop that flag for uncompressed files."
            )


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def masked_crc32c(data):
    """TFRecord's masked CRC-32C (Castagnoli) of `data`, in pure Python.

    Used on the 8-byte length headers only: that is what a framing check
    needs, and it keeps this module free of TensorFlow.
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _open(path):
    if "://" in path:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        return tf.io.gfile.GFile(path, "rb")
    return open(path, "rb")


def _walk(path):
    """Yields (offset, payload length) of each record; raises on bad framing."""
    with _open(path) as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(0)
        offset = 0
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                raise _Framing(f"truncated record header at byte {offset}")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise _Framing(f"corrupt record length at byte {offset}")
            end = offset + 12 + length + 4
            if end > size:
                raise _Framing(
                    f"truncated record at byte {offset} (needs {end} bytes, "
                    f"file has {size})"
                )
            yield offset, length
            f.seek(end)
            offset = end


class _Framing(Exception):
    pass


def check_tfrecord_framing(path):
    """None when a file's record headers are sound, else a short reason.

    Catches truncated files (an interrupted copy, the usual corruption) and
    garbled record lengths in a few small reads per record; a bit flip inside
    a payload needs a full read (reader_errors.find_corrupt_files).
    """
    try:
        for _ in _walk(path):
            pass
    except _Framing as reason:
        return str(reason)
    return None


def count_records(files):
    """Records in `files`, from the length headers (no payload is read).

    Raises:
      ReaderError: a file's framing is broken, naming the file.
    """
    total = 0
    for path in files:
        try:
            total += sum(1 for _ in _walk(path))
        except _Framing as reason:
            raise ReaderError(
                f"Corrupt or truncated TFRecord file {path} ({reason}): download "
                "it again, remove it from the data pattern, or pass "
                "--skip_corrupt_files to skip it."
            ) from None
    return total
