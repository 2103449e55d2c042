"""cli.py: progress lines, and the one-line usage errors."""

import cli


def test_progress_rate_and_eta_leave_out_the_start_up(capsys):
    now = [100.0]
    progress = cli.Progress(10, "videos", every_secs=5, clock=lambda: now[0])
    assert progress.update(1) == "1/10 videos"  # the first item: no rate yet
    now[0] = 102.0
    assert progress.update(3) is None  # not due
    now[0] = 106.0
    # 4 more videos in 6 s after the first: 0.667/s; 5 left: 7.5 s.
    assert progress.update(5) == "5/10 videos | 0.667 videos/s | ETA 0:00:08"
    now[0] = 107.0
    assert progress.update(10) == "10/10 videos | 1.29 videos/s"
    assert capsys.readouterr().out.count("\n") == 3


def test_progress_without_a_total_ends_with_its_count_and_rate(capsys):
    now = [0.0]
    progress = cli.Progress(None, "segments", every_secs=5, clock=lambda: now[0])
    assert progress.update(40) == "40 segments"
    now[0] = 2.0
    assert progress.update(120) is None
    assert progress.update(120, last=True) == "120 segments | 40 segments/s"
    assert progress.update(120, last=True) is None  # said once
    assert progress.measure(120) == (40.0, None)
    assert capsys.readouterr().out.splitlines() == [
        "40 segments",
        "120 segments | 40 segments/s",
    ]
