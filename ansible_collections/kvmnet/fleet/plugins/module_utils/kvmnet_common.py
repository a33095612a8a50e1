# Copyright (c) 2026 the kvmnet developers
# MIT License (see LICENSE at the collection's root)
"""What every kvmnet module shares: the import guard and kvmnet errors as module failures.

The modules run on the hypervisor (the target), so kvmnet and libvirt-python must be
importable by the target's ``ansible_python_interpreter``. A missing one is a one-line
failure saying what to install where, never a traceback.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

try:
    import kvmnet  # noqa: F401  (imported to find out whether it is there)
    from kvmnet.errors import KvmnetError, LibvirtMissing

    KVMNET_IMPORT_ERROR: str | None = None
except ImportError:
    KVMNET_IMPORT_ERROR = traceback.format_exc()

    class KvmnetError(Exception):  # type: ignore[no-redef]
        """Stands in so that ``except KvmnetError`` compiles when kvmnet is missing."""

    class LibvirtMissing(KvmnetError):  # type: ignore[no-redef]
        """As above."""


URI_OPTION = {"type": "str", "default": None}


def kvmnet_missing_hint() -> str:
    """The one line a module fails with when kvmnet does not import on the target."""
    return (
        f"kvmnet is not importable by {sys.executable} on the target: install it there "
        f"({sys.executable} -m pip install kvmnet) or point ansible_python_interpreter at "
        "a Python that has it"
    )


def require_kvmnet(fail_json: Callable[..., Any]) -> None:
    """Fail the module with the hint (and the import traceback as ``exception``)."""
    if KVMNET_IMPORT_ERROR is not None:
        fail_json(msg=kvmnet_missing_hint(), exception=KVMNET_IMPORT_ERROR)


@contextmanager
def kvmnet_failures(fail_json: Callable[..., Any], **context: Any) -> Iterator[None]:
    """Turn a kvmnet error into a module failure with kvmnet's own message (one line).

    ``error`` in the result is the kvmnet exception's class name, so a playbook can tell a
    refusal (``MacInUse``, ``PreflightRefused``) from a failure (``RolledBack``).
    """
    try:
        yield
    except LibvirtMissing as exc:
        fail_json(
            msg=f"libvirt-python is not importable by {sys.executable} on the target: {exc}",
            error=type(exc).__name__,
            **context,
        )
    except KvmnetError as exc:
        fail_json(msg=str(exc), error=type(exc).__name__, **context)


def parse_selector(text: str | None) -> str | int | None:
    """The ``iface`` option as kvmnet takes it: an index (all digits) or a MAC, or None."""
    if text is None or text == "":
        return None
    return int(text) if text.isdigit() else text


def interface_facts(iface: Any) -> dict[str, Any] | None:
    """A kvmnet GuestInterface as plain data for the module's result."""
    if iface is None:
        return None
    mode = getattr(iface, "mode", None)
    return {
        "mac": iface.mac,
        "type": iface.type,
        "source": iface.source,
        "mode": mode.value if mode is not None else None,
        "index": getattr(iface, "index", None),
    }
