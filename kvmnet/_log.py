"""kvmnet's loggers: `logging` is imported only once a record could go somewhere.

Every kvmnet module logs through ``log = _log.get(__name__)``, which takes the calls of a
`logging.Logger` (``debug``, ``info``, ``warning``, ``error``, ``exception``, ``critical``)
and hands them to ``logging.getLogger(__name__)``. Until some code has imported `logging`,
nothing can have set a level or added a handler anywhere, so a debug or info record could
only be dropped: it is dropped without importing `logging` (with `traceback`, `string`,
`threading` and `weakref`: about a tenth of a ``kvmnet domains`` start). The first record
that could be shown, or any record once `logging` is loaded, imports it, gives the ``kvmnet``
logger its `logging.NullHandler` (``import kvmnet`` does that itself when `logging` is loaded
already) and runs what `when_ready` queued: the command line's handler.

Records keep the caller's file, line and function (``stacklevel`` skips this module).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

__all__ = ["Logger", "cancel", "get", "prepare", "when_ready"]

_ready = False
_pending: list[Callable[[], None]] = []


def _logging() -> Any:
    """The `logging` module, set up for kvmnet (once): the NullHandler, then what is queued."""
    global _ready
    import logging

    if not _ready:
        _ready = True
        logging.getLogger("kvmnet").addHandler(logging.NullHandler())
    while _pending:
        _pending.pop(0)()
    return logging


def prepare() -> None:
    """At ``import kvmnet``: with `logging` loaded already, set kvmnet up in it now."""
    if "logging" in sys.modules:
        _logging()


def when_ready(setup: Callable[[], None]) -> None:
    """Run ``setup`` right before the first record goes to `logging` (now if it went already).

    Args:
        setup: e.g. the command line adding its handler to the root logger.
    """
    if _ready:
        setup()
    else:
        _pending.append(setup)


def cancel(setup: Callable[[], None]) -> bool:
    """Drop ``setup`` if it has not run yet.

    Args:
        setup: as given to `when_ready`.

    Returns:
        True if it was still waiting (and now never runs).
    """
    if setup in _pending:
        _pending.remove(setup)
        return True
    return False


def _caller(kwargs: dict[str, Any]) -> dict[str, Any]:
    # The record names the code that called this module, not this module.
    kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
    return kwargs


class Logger:
    """``logging.getLogger(name)``, fetched when a record first needs it.

    Args:
        name: the logger's name (a module's ``__name__``).
    """

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger: logging.Logger | None = None

    def _get(self) -> logging.Logger:
        if self._logger is None:
            logger: logging.Logger = _logging().getLogger(self.name)
            self._logger = logger
        return self._logger

    def _idle(self) -> bool:
        # Nothing imported logging, so nothing set a level or a handler: Python's default
        # (WARNING on the root logger) drops debug and info records.
        return self._logger is None and "logging" not in sys.modules

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        """As `logging.Logger.debug`."""
        if not self._idle():
            self._get().debug(msg, *args, **_caller(kwargs))

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        """As `logging.Logger.info`."""
        if not self._idle():
            self._get().info(msg, *args, **_caller(kwargs))

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        """As `logging.Logger.warning`."""
        self._get().warning(msg, *args, **_caller(kwargs))

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        """As `logging.Logger.error`."""
        self._get().error(msg, *args, **_caller(kwargs))

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        """As `logging.Logger.exception`."""
        self._get().exception(msg, *args, **_caller(kwargs))

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        """As `logging.Logger.critical`."""
        self._get().critical(msg, *args, **_caller(kwargs))

    def __repr__(self) -> str:
        return f"<kvmnet logger {self.name!r}>"


def get(name: str) -> Logger:
    """The logger for module ``name``: ``log = _log.get(__name__)``.

    Args:
        name: the module's ``__name__``.

    Returns:
        A `Logger`.
    """
    return Logger(name)
