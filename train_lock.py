"""One trainer per --train_dir: a lock file that names its holder.

Two trainers on one directory would write checkpoints and exports over each
other. train.py holds `train_dir/train.lock` (JSON: pid, host, start time, a
random token) while it trains, and refreshes the file's modification time
every `heartbeat` seconds. A second trainer is refused with the holder's pid
and host. A lock is stale, and taken over with a line that says so, when its
holder is a process of this host that no longer exists, or when its holder
is on another host (a shared file system) and has not refreshed it for
`stale_after` seconds.

Taking over is safe against a second process taking over at the same time:
the stale file is renamed to a name of the taker's own (rename is atomic, so
one taker wins and the other finds no file), and the renamed file is checked
to be the one judged stale before a new lock is created with O_EXCL.
eval.py and inference.py only read, and take no lock.
"""

import json
import os
import socket
import threading
import time
import uuid

import cli

LOCK_FILE = "train.lock"


class TrainDirLock:
    """Context manager: holds train_dir's lock or raises cli.UsageError."""

    def __init__(self, train_dir, heartbeat=30.0, stale_after=300.0):
        self.path = os.path.join(train_dir, LOCK_FILE)
        self.train_dir = train_dir
        self.heartbeat = heartbeat
        self.stale_after = stale_after
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        self.acquire()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._holder(self.path).get("token") == self.token:
            os.remove(self.path)

    def acquire(self):
        for _ in range(3):
            if self._create():
                return
            holder = self._holder(self.path)
            reason = self._stale_reason(holder)
            if reason is None:
                raise cli.UsageError(
                    f"{self.train_dir} is in use by train.py (pid "
                    f"{holder.get('pid', '?')} on {holder.get('host', '?')}, started "
                    f"{holder.get('started', '?')}; lock {self.path}). Wait for it to "
                    "finish or stop it, or give another --train_dir. If that process "
                    f"is gone for good, delete {self.path}."
                )
            if self._take_over(holder):
                cli.say(
                    f"took over the lock of {self.train_dir} from train.py pid "
                    f"{holder.get('pid', '?')} on {holder.get('host', '?')} ({reason})"
                )
                return
        raise cli.UsageError(
            f"could not take the lock {self.path}: other trainers keep taking it."
        )

    def _create(self):
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "token": self.token,
        }
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        return True

    @staticmethod
    def _holder(path):
        """The lock's record with its age; {} when it is gone or half written."""
        try:
            with open(path) as f:
                record = json.load(f)
            record["age"] = time.time() - os.stat(path).st_mtime
            return record
        except (OSError, ValueError):
            return {}

    def _stale_reason(self, holder):
        if not holder:
            return None  # being written this instant, or just removed: retry
        if holder.get("host") == socket.gethostname():
            try:
                os.kill(int(holder["pid"]), 0)
            except ProcessLookupError:
                return f"process {holder['pid']} is gone"
            except PermissionError:
                pass  # alive, another user's
            return None
        if holder["age"] > self.stale_after:
            return f"not refreshed for {cli.format_duration(holder['age'])}"
        return None

    def _take_over(self, holder):
        aside = f"{self.path}.stale-{self.token}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False  # another taker moved it first
        if self._holder(aside).get("token") != holder.get("token"):
            # A fresh lock was created after the check: put it back.
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            os.remove(aside)
            return False
        os.remove(aside)
        return self._create()

    def _beat(self):
        while not self._stop.wait(self.heartbeat):
            if self._holder(self.path).get("token") == self.token:
                try:
                    os.utime(self.path)
                except OSError:
                    pass  # gone with its directory; nothing left to guard
