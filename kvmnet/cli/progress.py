"""A progress bar for the CLI's bulk commands: drawn on a terminal, silent when piped.

It is a :data:`kvmnet.progress.Progress` callback, so a command hands it straight to the
library::

    with ProgressBar("switching") as bar:
        host.use_bridge_all(names, "br0", progress=bar)
"""

from __future__ import annotations

import os
import sys
from types import TracebackType
from typing import TextIO

__all__ = ["ProgressBar"]


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

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self.enabled:
            return
        width = max(_columns(self.stream), 40)
        counter = f" {done}/{total} "
        head = f"{self.title} " if self.title else ""
        bar_width = max(10, min(40, width - len(head) - len(counter) - 20))
        filled = bar_width * done // total if total else bar_width
        bar = "[" + "#" * filled + "." * (bar_width - filled) + "]"
        line = f"{head}{bar}{counter}{label}"[: width - 1]
        # \r + clear-to-end so a shorter label does not leave the tail of a longer one.
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line (only if one was drawn)."""
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
