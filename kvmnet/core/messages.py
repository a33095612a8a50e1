"""How kvmnet quotes a value in a message: one line, of bounded length, whatever the value.

`kvmnet.core.validate` re-exports these (``validate.shown``...); the name and MAC rules use
them from here, below validate, so that no module imports another that imports it back.

Usage::

    raise InvalidName(f"bridge name {shown(name)} ...")
    f"its interfaces: {listed(macs)}"        # "a, b, ... and 190 more"
    f"libvirt said: {one_line(message)}"     # libvirt's "^" marker lines dropped
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["listed", "one_line", "shown"]

_REPR_MAX = 120


def shown(value: object) -> str:
    """``repr(value)`` for a message: one line, at most about 120 characters.

    Never raises: a huge int (whose ``repr`` Python refuses past 4300 digits) is shown by
    its size, and an object whose ``__repr__`` fails or returns several lines by its type,
    so that a bad argument gets its `KvmnetError`, not an error from the message.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        kind = "an int" if value > 0 else "a negative int"
        return f"<{kind} of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:  # any __repr__ may fail; the message must not
        return f"<{type(value).__name__} object whose repr() fails>"
    if not isinstance(text, str):  # pragma: no cover - repr() itself checks this
        return f"<{type(value).__name__} object>"
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 5] + "...)" + text[-1]


def one_line(message: str, *, limit: int = 300) -> str:
    """``message`` (a library's error text) on one line of at most ``limit`` characters.

    libvirt and libxml2 add the offending line and a ``^`` marker below their message;
    kvmnet's messages are one line each (the CLI prints one line per refusal).
    """
    lines = [line.strip() for line in str(message).splitlines()]
    parts = [line for line in lines if line and set(line) != {"^"}]
    text = ""
    for part in parts:
        # A line starting with punctuation continues the one before (lxml: "...\n, line 1").
        text += part if not text or part[0] in ",.;:)" else " " + part
    return text if len(text) <= limit else text[: limit - 3] + "..."


def listed(items: Iterable[object], *, limit: int = 10) -> str:
    """``a, b, c`` for a message: the first ``limit`` items, then how many more there are."""
    items = list(items)
    head = ", ".join(str(item) for item in items[:limit])
    more = len(items) - limit
    return f"{head} and {more} more" if more > 0 else head
