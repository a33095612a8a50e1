"""docs/examples/explore.ipynb runs from top to bottom without an error cell.

nbclient starts the ``python3`` kernel that ipykernel installs into the virtual environment
(``.venv/share/jupyter/kernels/python3``, found through ``sys.prefix``), so a fresh clone needs
no ``ipykernel install`` step.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "docs" / "examples" / "explore.ipynb"


def test_notebook_runs_without_error_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel must not reach a real hypervisor, whatever the caller's environment says.
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "test:///default")
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    client.execute(cwd=str(tmp_path), env=env)
    errors = [
        (n, out.get("ename"), out.get("evalue"))
        for n, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert errors == []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.get("execution_count") for c in code_cells)
    # The notebook's point is the rich output: the host table, the coloured diff, the plan.
    html = [
        out["data"]["text/html"]
        for c in code_cells
        for out in c.get("outputs", [])
        if "text/html" in out.get("data", {})
    ]
    assert len(html) >= 3
    # Each object's own view (tests/unit/test_html_views.py checks them in detail).
    views = "\n".join(html)
    for shown in (
        "libvirt networks",  # host.networks()
        "sources read",  # the MacAllocator
        "HostNic eth0",
        "Bridge virbr0",
        "backend auto -&gt; ifupdown",  # the auto plan's note...
        "-iface eth0 inet static</span>",  # ... and its file change as a diff line
        "LanPlan: put",
        "LanResult: web1 on default",  # an applied guest move
    ):
        assert shown in views, shown
    # ... and the picture: the host, then the combined plan with its moves marked.
    svgs = [h for h in html if "<svg" in h]
    assert len(svgs) >= 2
    assert any("changed by the plan" in h for h in svgs)
