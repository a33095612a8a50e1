"""kvmnet._log: loggers that import `logging` only once a record could go somewhere.

Each check runs in a fresh interpreter: this test process imported logging long ago.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from kvmnet import _log

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    report["stderr"] = result.stderr
    return report


def test_debug_and_info_before_logging_is_loaded_import_nothing() -> None:
    report = _python(
        "import json, sys\n"
        "from kvmnet import _log\n"
        "log = _log.get('kvmnet.x')\n"
        "log.debug('d %s', 1); log.info('i')\n"
        "print(json.dumps({'logging': 'logging' in sys.modules}))\n"
    )
    assert report == {"logging": False, "stderr": ""}


def test_a_warning_loads_logging_with_kvmnets_null_handler_and_the_queued_setup() -> None:
    report = _python(
        "import json, sys\n"
        "from kvmnet import _log\n"
        "seen = []\n"
        "_log.when_ready(lambda: seen.append('logging' in sys.modules))\n"
        "_log.get('kvmnet.x').warning('w')\n"
        "import logging\n"
        "print(json.dumps({'seen': seen, 'handlers': [type(h).__name__ for h in "
        "logging.getLogger('kvmnet').handlers]}))\n"
    )
    # The NullHandler keeps Python's last-resort handler from printing it, as it always did.
    assert report == {"seen": [True], "handlers": ["NullHandler"], "stderr": ""}


def test_kvmnet_imported_after_logging_sets_up_at_once() -> None:
    report = _python(
        "import json, logging\n"
        "import kvmnet\n"
        "print(json.dumps({'handlers': [type(h).__name__ for h in "
        "logging.getLogger('kvmnet').handlers]}))\n"
    )
    assert report["handlers"] == ["NullHandler"]


def test_a_cancelled_setup_never_runs() -> None:
    report = _python(
        "import json\n"
        "from kvmnet import _log\n"
        "ran = []\n"
        "setup = lambda: ran.append(1)\n"
        "_log.when_ready(setup)\n"
        "first = _log.cancel(setup)\n"
        "_log.get('kvmnet.x').warning('w')\n"
        "print(json.dumps({'first': first, 'again': _log.cancel(setup), 'ran': ran}))\n"
    )
    assert report == {"first": True, "again": False, "ran": [], "stderr": ""}


def _records_here(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    log = _log.get("kvmnet.test_log")
    with caplog.at_level(logging.DEBUG, logger="kvmnet.test_log"):
        log.debug("debug %s", "arg")
        log.info("info")
        log.warning("warning")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("exception")
    return [r for r in caplog.records if r.name == "kvmnet.test_log"]


def test_records_name_the_caller_not_the_stand_in(caplog: pytest.LogCaptureFixture) -> None:
    records = _records_here(caplog)
    assert [r.getMessage() for r in records] == ["debug arg", "info", "warning", "exception"]
    assert {r.funcName for r in records} == {"_records_here"}
    assert {Path(r.pathname).name for r in records} == {"test_log.py"}
    assert records[-1].exc_info is not None and records[-1].exc_info[0] is ValueError
