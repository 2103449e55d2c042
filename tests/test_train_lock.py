"""The lock on --train_dir, and the stop signals train.py turns into a save."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import cli
import train_lock


def write_lock(directory, pid, host=None, token="theirs", age=0.0):
    path = directory / train_lock.LOCK_FILE
    path.write_text(
        json.dumps({"pid": pid, "host": host or socket.gethostname(), "token": token})
    )
    if age:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_is_held_then_released(tmp_path):
    with train_lock.TrainDirLock(str(tmp_path)) as lock:
        record = json.loads((tmp_path / train_lock.LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() and record["token"] == lock.token
        with pytest.raises(cli.UsageError) as refused:
            train_lock.TrainDirLock(str(tmp_path)).acquire()
        message = str(refused.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in message
        assert "another --train_dir" in message
    assert not (tmp_path / train_lock.LOCK_FILE).exists()


def test_a_lock_of_a_process_that_is_gone_is_taken_over(tmp_path, capsys):
    pid = dead_pid()
    write_lock(tmp_path, pid)
    with train_lock.TrainDirLock(str(tmp_path)) as lock:
        record = json.loads((tmp_path / train_lock.LOCK_FILE).read_text())
        assert record["token"] == lock.token
    said = capsys.readouterr().out
    assert f"took over the lock of {tmp_path} from train.py pid {pid}" in said
    assert f"process {pid} is gone" in said
    assert os.listdir(tmp_path) == []  # no stale copy left behind


def test_another_hosts_lock_is_stale_only_without_heartbeat(tmp_path):
    write_lock(tmp_path, 1, host="elsewhere", age=10)
    with pytest.raises(cli.UsageError, match="pid 1 on elsewhere"):
        train_lock.TrainDirLock(str(tmp_path), stale_after=60).acquire()
    write_lock(tmp_path, 1, host="elsewhere", age=120)
    lock = train_lock.TrainDirLock(str(tmp_path), stale_after=60)
    lock.acquire()
    assert json.loads((tmp_path / train_lock.LOCK_FILE).read_text())["token"] == (
        lock.token
    )


def test_the_heartbeat_keeps_the_lock_fresh(tmp_path):
    with train_lock.TrainDirLock(str(tmp_path), heartbeat=0.05):
        path = tmp_path / train_lock.LOCK_FILE
        past = time.time() - 1000
        os.utime(path, (past, past))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 10


def test_a_takeover_never_removes_a_lock_taken_in_between(tmp_path):
    # Two trainers judged the same lock stale; the first took it over. The
    # second's takeover must then fail and leave the first one's lock.
    stale = {"pid": dead_pid(), "host": socket.gethostname(), "token": "old"}
    first = train_lock.TrainDirLock(str(tmp_path))
    first.acquire()
    second = train_lock.TrainDirLock(str(tmp_path))
    assert not second._take_over(stale)
    record = json.loads((tmp_path / train_lock.LOCK_FILE).read_text())
    assert record["token"] == first.token
    assert os.listdir(tmp_path) == [train_lock.LOCK_FILE]


def test_stop_signals_are_recorded_once_then_act_as_before():
    previous = signal.getsignal(signal.SIGTERM)
    with cli.StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
        assert stop.received == signal.SIGTERM
        # After the first, the handlers are the previous ones again.
        assert signal.getsignal(signal.SIGTERM) is previous
    # Python's own Ctrl-C handler before (a pytest-xdist worker ignores SIGINT).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with cli.StopSignals() as stop:
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
            assert stop.received == signal.SIGINT
    finally:
        signal.signal(signal.SIGINT, outer)
    assert signal.getsignal(signal.SIGTERM) is previous
