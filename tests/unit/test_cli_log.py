"""The CLI's log beside the progress bar: on a terminal (a real pseudo-terminal) each log line
is written above the bar, which is drawn again below it; repeated lines are shown once."""

from __future__ import annotations

import io
import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

from kvmnet.cli.progress import LogHandler, ProgressBar
from kvmnet.testing import Guest, Nic, bridge_network, nat_network, world_uri


def _screen_lines(raw: str) -> list[str]:
    """What a terminal shows for ``raw``: per line, the text after the last carriage return
    (each redraw starts with one), without the clear-to-end-of-line sequences."""
    return [line.rsplit("\r", 1)[-1].replace("\x1b[K", "") for line in raw.split("\n")]


def _run_on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run kvmnet with stderr on a pseudo-terminal, stdout on a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvmnet", *args],
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    status = proc.wait(timeout=60)
    # The terminal turns \n into \r\n on output; the screen is what matters.
    return status, out, b"".join(chunks).decode().replace("\r\n", "\n")


def test_warnings_during_the_bar_are_whole_lines_on_a_terminal(tmp_path: Path) -> None:
    # nat-all onto a network that is not NAT: one warning per guest while the bar is drawn.
    uri = world_uri(
        tmp_path,
        *(Guest(f"web{n}", nics=(Nic.bridge("br0"),)) for n in range(1, 4)),
        networks=(nat_network(), bridge_network("lan", "br0")),
    )
    status, out, screen = _run_on_a_terminal(
        "-c", uri, "nat-all", "--network", "lan", "--on-bridge", "br0", "--dry-run"
    )
    assert status == 0, screen
    assert out.count("<source network='lan'/>") == 3
    shown = _screen_lines(screen)
    warnings = [line for line in shown if "WARNING" in line]
    assert len(warnings) == 3
    for line in warnings:  # whole lines: no bar before the log text, none after it
        assert line.startswith("kvmnet: WARNING: domain 'web"), line
        assert line.endswith("not NAT"), line
    bars = [line for line in shown if line.startswith("-> lan [")]
    assert bars and " 3/3 web" in bars[-1]  # in libvirt's listing order
    # The bar was drawn again after each warning: the bar's line follows every warning.
    for i, line in enumerate(screen.split("\n")):
        if "WARNING" in line:
            assert "-> lan [" in screen.split("\n")[i + 1]


def test_piped_there_is_no_bar_and_the_same_warnings(tmp_path: Path) -> None:
    uri = world_uri(
        tmp_path,
        Guest("web1", nics=(Nic.bridge("br0"),)),
        networks=(nat_network(), bridge_network("lan", "br0")),
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvmnet",
            "-c",
            uri,
            "nat-all",
            "--network",
            "lan",
            "--on-bridge",
            "br0",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0
    assert res.stderr.splitlines() == [
        "kvmnet: WARNING: domain 'web1': network 'lan' is bridged (forward mode 'bridge'), not NAT"
    ]


def test_a_repeated_line_is_shown_once_and_counted() -> None:
    stream = io.StringIO()
    handler = LogHandler(stream)
    log = logging.getLogger("kvmnet.test_cli_log")
    log.addHandler(handler)
    log.propagate = False
    try:
        for _ in range(150):
            log.warning("probe on %s: the sender failed", "br0")
            log.warning("waiting for %s", "web1")
        log.warning("something else")
    finally:
        log.removeHandler(handler)
        handler.close()
    assert stream.getvalue().splitlines() == [
        "kvmnet: WARNING: probe on br0: the sender failed",
        "kvmnet: WARNING: waiting for web1",
        "kvmnet: WARNING: something else",
        "kvmnet: WARNING: probe on br0: the sender failed (repeated 149 more times)",
        "kvmnet: WARNING: waiting for web1 (repeated 149 more times)",
    ]
    handler.close()  # a second close says nothing again
    assert len(stream.getvalue().splitlines()) == 5


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_line_goes_above_the_bar_and_the_bar_is_redrawn() -> None:
    stream = _Tty()
    handler = LogHandler(stream)
    record = logging.LogRecord("kvmnet", logging.WARNING, __file__, 1, "careful", None, None)
    with ProgressBar("switching", stream=stream) as bar:
        bar(1, 2, "web1")
        handler.emit(record)
        bar(2, 2, "web2")
    handler.emit(record)  # the bar is gone: a plain line
    handler.close()
    lines = _screen_lines(stream.getvalue())
    assert lines[0] == "kvmnet: WARNING: careful"
    assert lines[1].startswith("switching [") and lines[1].endswith("2/2 web2")
    assert lines[2:] == ["kvmnet: WARNING: careful (repeated 1 more time)", ""]
