"""The progress convention for bulk operations: one optional callback, no dependency.

A library call that works through many items (every guest on a network, a list of guests)
takes ``progress: Progress | None = None`` and calls it as ``progress(done, total, label)``:
``done`` items finished out of ``total``, ``label`` naming the item just finished (a domain
name). It is called once with ``done=0`` before the first item, then after every item, so
``done == total`` marks the end. The callback must not raise; kvmnet does not catch for it::

    def show(done: int, total: int, label: str) -> None:
        print(f"{done}/{total} {label}")

    host.use_bridge_all(names, "br0", progress=show)   # any bulk call that takes progress=

The CLI passes `kvmnet.cli.progress.ProgressBar`, which draws a bar on a terminal and
prints nothing when its output is piped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["Progress", "track"]

#: ``progress(done, total, label)``; see the module docstring.
Progress = Callable[[int, int, str], None]

T = TypeVar("T")


def track(
    items: Iterable[T], progress: Progress | None, *, label: Callable[[T], str] = str
) -> Iterator[T]:
    """Yield ``items``, reporting to ``progress`` before the first and after each one.

    A library loop stays one line: ``for dom in track(doms, progress, label=lambda d: d.name):``
    """
    pending = list(items)
    total = len(pending)
    if progress is not None:
        progress(0, total, "")
    for done, item in enumerate(pending, 1):
        yield item
        if progress is not None:
            progress(done, total, label(item))
