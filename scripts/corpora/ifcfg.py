"""The ifcfg corpus: real RHEL network-scripts files from upstream test suites.

- NetworkManager's ifcfg-rh test profiles (``src/core/settings/plugins/ifcfg-rh/tests/
  network-scripts/``) from the upstream tarball of Debian's ``network-manager`` source
  package: ``ifcfg-*``, ``route-*``, ``route6-*``, ``rule-*``, ``*.cexpected``;
- os-net-config's ifcfg test expectations: the string constants holding an ifcfg file in
  ``os_net_config/tests/test_impl_ifcfg.py`` of its sdist on PyPI, one file each.

Written to ``<cache>/ifcfg/network-manager/`` and ``<cache>/ifcfg/os-net-config/``, with
``SOURCES.txt`` naming package, version and original path of every file.
"""

from __future__ import annotations

import ast
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from .cache import CorpusError, apt_source, complete, mark_complete, pip_sdist

__all__ = ["NM_TESTS", "OS_NET_CONFIG", "fetch"]

NM_TESTS = "src/core/settings/plugins/ifcfg-rh/tests/network-scripts/"
OS_NET_CONFIG = "os-net-config==18.1.0"
_ONC_TESTS = "os_net_config/tests/test_impl_ifcfg.py"
_NM_KEEP = ("ifcfg-", "route-", "route6-", "rule-", "rule6-")


def _members(archive: tarfile.TarFile, inside: str) -> list[tuple[tarfile.TarInfo, str]]:
    out = []
    for member in archive.getmembers():
        path = PurePosixPath(member.name)
        rel = "/".join(path.parts[1:])  # below the tarball's top folder
        if member.isfile() and rel.startswith(inside) and "/" not in rel[len(inside) :]:
            out.append((member, path.name))
    return out


def _network_manager(dest: Path) -> list[str]:
    downloads = dest / "download"
    dsc = apt_source("network-manager", downloads)
    version = dsc.name.split("_", 1)[1].removesuffix(".dsc")
    origs = sorted(downloads.glob("network-manager_*.orig.tar.*"))
    if not origs:
        raise CorpusError(f"no upstream tarball beside {dsc}")
    files = dest / "files"
    files.mkdir()
    listed = []
    with tarfile.open(origs[-1]) as archive:
        for member, name in _members(archive, NM_TESTS):
            if not name.startswith(_NM_KEEP):
                continue
            data = archive.extractfile(member)
            if data is None:
                continue
            (files / name).write_bytes(data.read())
            listed.append(f"network-manager {version} (Debian source) {member.name}")
    shutil.rmtree(downloads)
    if len(listed) < 50:
        raise CorpusError(f"only {len(listed)} files under {NM_TESTS} in {origs[-1].name}")
    return listed


def _os_net_config(dest: Path) -> list[str]:
    downloads = dest / "download"
    sdist = pip_sdist(OS_NET_CONFIG, downloads)
    files = dest / "files"
    files.mkdir()
    listed = []
    with tarfile.open(sdist) as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith(_ONC_TESTS)), None)
        data = archive.extractfile(member) if member is not None else None
        if member is None or data is None:
            raise CorpusError(f"{_ONC_TESTS} not in {sdist.name}")
        tree = ast.parse(data.read().decode())
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        try:
            value = ast.literal_eval(node.value)
        except ValueError:
            continue  # built by formatting at run time: not a literal file
        if isinstance(value, str) and "DEVICE=" in value:
            name = node.targets[0].id.strip("_").lower()
            (files / f"ifcfg-onc_{name}").write_text(value)
            listed.append(f"{sdist.name} (PyPI sdist) {member.name} constant {node.targets[0].id}")
    shutil.rmtree(downloads)
    return listed


def fetch(cache: Path, *, refresh: bool = False) -> Path:
    """Fetch the ifcfg corpus into ``cache/ifcfg`` (kept when complete, unless ``refresh``).

    Returns:
        The corpus folder.

    Raises:
        CorpusError: a download or extraction failed.
    """
    folder = cache / "ifcfg"
    if complete(folder) and not refresh:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    sources = []
    for name, step in (("network-manager", _network_manager), ("os-net-config", _os_net_config)):
        part = folder / name
        part.mkdir(parents=True)
        sources += step(part)
    (folder / "SOURCES.txt").write_text("\n".join(sources) + "\n")
    mark_complete(folder, f"{len(sources)} files\n")
    return folder
