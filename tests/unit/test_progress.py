"""The progress convention (kvmnet.core.progress) and the CLI's bar (kvmnet.cli.progress)."""

from __future__ import annotations

import io

from kvmnet.cli.progress import ProgressBar
from kvmnet.core.progress import track


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_track_reports_start_and_each_item() -> None:
    seen: list[tuple[int, int, str]] = []
    out = list(track(["web1", "web2"], lambda d, t, label: seen.append((d, t, label))))
    assert out == ["web1", "web2"]
    assert seen == [(0, 2, ""), (1, 2, "web1"), (2, 2, "web2")]


def test_track_without_callback_just_yields() -> None:
    assert list(track(range(3), None)) == [0, 1, 2]


def test_bar_is_silent_when_piped() -> None:
    stream = io.StringIO()  # isatty() is False, like a pipe
    with ProgressBar("switching", stream=stream) as bar:
        for done in range(4):
            bar(done, 3, f"web{done}")
    assert stream.getvalue() == ""


def test_bar_draws_on_a_terminal_and_ends_its_line() -> None:
    stream = _Tty()
    with ProgressBar("switching", stream=stream) as bar:
        bar(0, 4, "")
        bar(2, 4, "web2")
        bar(4, 4, "web4")
    text = stream.getvalue()
    assert text.count("\r") == 3
    assert "2/4 web2" in text
    last = text.rsplit("\r", 1)[1]
    assert "[" + "#" * (last.index("]") - last.index("[") - 1) + "]" in last  # full at 4/4
    assert text.endswith("\n")


def test_bar_can_be_forced_off_on_a_terminal() -> None:
    stream = _Tty()
    with ProgressBar(stream=stream, enabled=False) as bar:
        bar(1, 1, "x")
    assert stream.getvalue() == ""
