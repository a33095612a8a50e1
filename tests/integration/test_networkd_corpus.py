"""The real systemd-networkd reads what kvmnet makes of systemd's own test-network corpus
(tests/unit/test_networkd_corpus.py checks the values; here networkd is the parser).

One networkd in a lab namespace loads every original .network file (with its drop-ins) and
kvmnet's port and bridge files for it, each case under its own names; networkd parses every
file at start, whether a link matches or not. kvmnet's files must draw no complaint from
networkd that the original did not draw already (systemd's corpus has deliberate ones).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from kvmnet.errors import PreflightRefused
from kvmnet.hostnet.backends.networkd import NetworkdBackend
from kvmnet.hostnet.fake import fake_host
from kvmnet.hostnet.model.plan import WriteFile
from kvmnet.hostnet.model.request import BridgeRequest, HostState
from kvmnet.hostnet.model.state import LinkState
from tests.lab import Lan
from tests.lab.networkd import NetworkdLab
from tests.unit.test_networkd_corpus import Case, cases

pytestmark = [
    pytest.mark.root("network namespaces, a private D-Bus and systemd-networkd"),
    pytest.mark.integration,
]

_WHERE = re.compile(r"/etc/systemd/network/(?P<file>[^:]+):\d+: (?P<what>.*)$")


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    with Lan("kvc") as lan:
        yield lan


def bridged(case: Case, n: int) -> dict[str, str] | None:
    """kvmnet's port and bridge .network for ``case``, named ``kc{n}-...`` (bridge ``kb{n}``)."""
    files = {f"/image{p}": b for p, b in case.files.items()}
    host = fake_host([LinkState(case.nic, case.mac)], files=files)
    current = HostState(nic=LinkState(case.nic, case.mac), bridge=None, files=host)
    try:
        plan = NetworkdBackend(root="/image", runner=host).plan_enslave(
            BridgeRequest(case.nic, f"kb{n}"), current
        )
    except PreflightRefused:
        return None
    out = {}
    for step in plan.steps:
        if isinstance(step, WriteFile) and step.path.endswith(".network"):
            role = "bridge" if step.path.endswith(f"kb{n}.network") else "port"
            out[f"kc{n:03}-{role}.network"] = step.content
    return out


def test_networkd_reads_kvmnets_files_as_it_reads_the_originals(lan: Lan) -> None:
    all_cases = cases()
    host = lan.add_host(mac="52:54:00:dd:0c:01")
    ours: dict[str, str] = {}  # our file -> the original it came from
    with NetworkdLab(host) as nd:
        for n, case in enumerate(all_cases):
            for path, data in case.files.items():
                target = nd.network_dir / path.removeprefix("/etc/systemd/network/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            for name, text in (bridged(case, n) or {}).items():
                nd.write(name, text)
                ours[name] = case.name
        assert len(ours) >= 100, len(ours)
        nd.start()
        time.sleep(1)  # the log is written as networkd goes; it parsed everything before the bus
        complaints = nd.complaints()
    said: dict[str, Counter[str]] = {}
    for line in complaints:
        m = _WHERE.search(line)
        if m:
            # A drop-in's complaint belongs to its .network file.
            owner = m["file"].split(".d/", 1)[0] if ".d/" in m["file"] else m["file"]
            said.setdefault(owner, Counter())[m["what"]] += 1
    problems = []
    for name, source in sorted(ours.items()):
        extra = said.get(name, Counter()) - said.get(source, Counter())
        if extra:
            problems.append(f"{name} (from {source}): {dict(extra)}")
    assert not problems, "\n".join(problems)
    # The check can fail: networkd did complain about some originals (the corpus has
    # deliberate mistakes), so complaints are being read.
    assert any(s in said for s in ours.values()), complaints[:5]
