"""A progress bar for the CLI's bulk commands: drawn on a terminal, silent when piped.

It is a :data:`kvmnet.core.progress.Progress` callback, so a command hands it straight to the
library::

    with ProgressBar("switching") as bar:
        host.use_bridge_all(names, "br0", progress=bar)

:class:`LogHandler` is how the command shows the library's log: through the bar (the bar's
line cleared, the log line written, the bar drawn again) and each distinct line once.
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType
from typing import TextIO

__all__ = ["LogHandler", "ProgressBar"]

# The bar on screen now, if any: log lines go above it. One at a time (a command draws one).
_drawn_bar: ProgressBar | None = None


def _columns(stream: TextIO) -> int:
    # os, not shutil: shutil costs every CLI start a few ms of imports for this one call.
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80


class ProgressBar:
    """``bar(done, total, label)`` redraws one line on ``stream`` (stderr) if it is a TTY.

    ``enabled=None`` decides by ``stream.isatty()``; scripts reading the command's output
    get no control characters. Leaving the ``with`` block ends the line.
    """

    def __init__(
        self, title: str = "", *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.title = title
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._drawn = False
        self._line = ""

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self.enabled:
            return
        width = max(_columns(self.stream), 40)
        counter = f" {done}/{total} "
        head = f"{self.title} " if self.title else ""
        bar_width = max(10, min(40, width - len(head) - len(counter) - 20))
        filled = bar_width * done // total if total else bar_width
        bar = "[" + "#" * filled + "." * (bar_width - filled) + "]"
        self._line = f"{head}{bar}{counter}{label}"[: width - 1]
        self._draw()

    def _draw(self) -> None:
        global _drawn_bar
        # \r + clear-to-end so a shorter label does not leave the tail of a longer one.
        self.stream.write(f"\r{self._line}\x1b[K")
        self.stream.flush()
        self._drawn = True
        _drawn_bar = self

    def write_above(self, text: str) -> None:
        """Write ``text`` (one line, no newline) on the bar's line and draw the bar below it.

        Args:
            text: the line to show, e.g. a log message.
        """
        if not self._drawn:
            self.stream.write(text + "\n")
            self.stream.flush()
            return
        self.stream.write(f"\r{text}\x1b[K\n")
        self._draw()

    def close(self) -> None:
        """End the bar's line (only if one was drawn)."""
        global _drawn_bar
        if _drawn_bar is self:
            _drawn_bar = None
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LogHandler(logging.Handler):
    """The CLI's log on ``stream`` (stderr): above the progress bar, each line once.

    A line equal to one already shown is counted, not shown again: a wait loop that logs the
    same warning on every round would otherwise fill the screen (or a piped log) with it.
    :meth:`close` ends with one ``... (repeated N more times)`` line per repeated message.

    With ``hold`` (``--json``) nothing is written while the command runs: the lines wait,
    so that an error can carry them inside its one JSON object on stderr (:meth:`take`);
    :meth:`close` writes those still held (the command succeeded).

    Args:
        stream: where to write (default: ``sys.stderr`` at the time of each write).
        hold: keep the lines until :meth:`take` or :meth:`close`.
    """

    def __init__(self, stream: TextIO | None = None, *, hold: bool = False) -> None:
        super().__init__()
        self._stream = stream
        self._hold = hold
        self._repeats: dict[str, int] = {}
        self.setFormatter(logging.Formatter("kvmnet: %(levelname)s: %(message)s"))

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # One line, as every other kvmnet message (a tool's stderr may hold several).
            text = " ".join(self.format(record).split())
            if text in self._repeats:
                self._repeats[text] += 1
                return
            self._repeats[text] = 0
            if not self._hold:
                self._write(text)
        except Exception:
            self.handleError(record)

    def take(self) -> list[str]:
        """The held lines, each once with its repeat count, in the order first logged; they
        are then no longer held (:meth:`close` writes nothing for them).

        Returns:
            The lines (empty without ``hold``: they were written already).
        """
        if not self._hold:
            return []
        lines = [_counted(text, more) for text, more in self._repeats.items()]
        self._repeats = {}
        return lines

    def _write(self, text: str) -> None:
        bar = _drawn_bar
        if bar is not None and bar.stream is self.stream:
            bar.write_above(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Say how often each repeated line came (once; later calls write nothing)."""
        try:
            if self._hold:
                for line in self.take():
                    self._write(line)
            for text, more in self._repeats.items():
                if more:
                    self._write(_counted(text, more))
        except (OSError, ValueError):
            pass  # stderr closed: nowhere left to say it
        self._repeats = {t: 0 for t in self._repeats}
        super().close()


def _counted(text: str, more: int) -> str:
    """``text``, and how many more times it came when it came again."""
    return f"{text} (repeated {more} more time{'s' if more > 1 else ''})" if more else text
