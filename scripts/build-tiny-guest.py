#!/usr/bin/env python3
"""Build the tiny guest kvmnet's real-guest tests boot: Debian's kernel + a busybox initramfs.

Nothing is installed on the host: the kernel and busybox come from ``apt-get download`` and
``dpkg-deb -x``. The kernel is also unpacked from its bzImage into an ELF ``vmlinux`` when it
has a PVH entry, which QEMU boots without the seconds TCG spends decompressing.

The initramfs loads the virtio-net modules, runs udhcpc on eth0, prints ``LEASE <ip> <router>``
on the serial console for every lease, and asks again whenever eth0's carrier drops and returns
(as NetworkManager or networkd would), so a guest moved between networks with a link bounce
shows its new address on the console.

The result is cached under ``$XDG_CACHE_HOME/kvmnet/tiny-guest/<kernel version>-<builder hash>``
(default ``~/.cache/...``); a second run only prints where it is. Output: one JSON line,
``{"kernel": PATH, "initrd": PATH, "version": KVER}``.

Usage: scripts/build-tiny-guest.py [--cache DIR] [--force]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

# The NIC's module and everything it needs (each .ko's depends= is read too, to be sure).
MODULES = (
    "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio", "virtio_pci",
    "failover", "net_failover", "virtio_net",
)

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
for m in $(cat /etc/modules.order); do insmod /lib/modules/$m.ko; done
ip link set lo up
echo "TINYGUEST init $(cat /proc/uptime)"
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
ip link set eth0 up
echo "TINYGUEST eth0 $(cat /sys/class/net/eth0/address)"
carrier() { cat /sys/class/net/eth0/carrier 2>/dev/null || echo 0; }
while true; do
  while [ "$(carrier)" != 1 ]; do sleep 0.2; done
  # One lease, then watch the carrier; -n: give up after a few tries and ask again (a port
  # new on an STP bridge forwards nothing for its first seconds).
  if udhcpc -i eth0 -s /etc/udhcpc.script -f -q -n -t 4 -T 1 >/dev/null 2>&1; then
    while [ "$(carrier)" = 1 ]; do sleep 0.2; done
    echo "TINYGUEST carrier down"
    ip addr flush dev eth0
  else
    echo "TINYGUEST no lease yet"
  fi
done
"""

# udhcpc's hook: only `ip addr` and `ip route` inside the guest, and one console line.
UDHCPC_SCRIPT = r"""#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "LEASE $ip ${router%% *}" > /dev/console ;;
esac
exit 0
"""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kvmnet" / "tiny-guest"


def run(argv: list[str], *, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        sys.exit(f"build-tiny-guest: {' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def kernel_package(*, refreshed: bool = False) -> str:
    """The real kernel package: linux-image-amd64's ``linux-image-X.Y.Z-N-amd64`` dependency."""
    argv = ["apt-cache", "depends", "linux-image-amd64"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    for line in proc.stdout.splitlines():
        name = line.split(":", 1)[-1].strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    if not refreshed and os.geteuid() == 0:
        # A fresh machine may have no package lists yet.
        run(["apt-get", "update", "-qq"])
        return kernel_package(refreshed=True)
    sys.exit("build-tiny-guest: apt-cache knows no linux-image-amd64; run apt-get update")


def download(package: str, debs: Path) -> Path:
    """The package's .deb, downloaded once into ``debs``."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    argv = ["apt-get", "download", package]
    proc = subprocess.run(argv, cwd=debs, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0 and os.geteuid() == 0:
        # A fresh machine's package lists may be stale; refresh them once.
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "download", package], cwd=debs)
    elif proc.returncode != 0:
        sys.exit(f"build-tiny-guest: apt-get download {package}: {proc.stderr.strip()}")
    return sorted(debs.glob(f"{package}_*.deb"))[-1]


def module_files(tree: Path, kver: str) -> dict[str, Path]:
    """name -> .ko(.xz) path for every module in the unpacked kernel package."""
    files: dict[str, Path] = {}
    for path in (tree / "lib" / "modules" / kver).rglob("*.ko*"):
        files[path.name.split(".ko")[0].replace("-", "_")] = path
    return files


def module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def depends(data: bytes) -> list[str]:
    """The ``depends=`` entry of a module's .modinfo section."""
    start = data.find(b"\0depends=")
    if start < 0:
        return []
    value = data[start + len(b"\0depends="): data.index(b"\0", start + 1)].decode()
    return [m.replace("-", "_") for m in value.split(",") if m]


def load_order(wanted: tuple[str, ...], files: dict[str, Path]) -> list[str]:
    """Every wanted module and its dependencies, dependencies first."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in files:
            sys.exit(f"build-tiny-guest: module {name} is not in the kernel package")
        for dep in depends(module_bytes(files[name])):
            visit(dep)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def pvh_vmlinux(bzimage: bytes) -> bytes | None:
    """The uncompressed kernel inside a bzImage, if QEMU can boot it directly (PVH entry).

    Under TCG, decompressing the kernel costs seconds on every boot; QEMU boots an ELF
    vmlinux with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) without that step.
    """
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    payload = bzimage[(setup_sects + 1) * 512 + offset:][:length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        elf = lzma.LZMADecompressor().decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        elf = gzip.decompress(payload)
    else:
        return None
    return elf if has_pvh_note(elf) else None


def has_pvh_note(elf: bytes) -> bool:
    if elf[:5] != b"\x7fELF\x02":  # 64-bit ELF only
        return False
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        header = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        ptype, off, filesz = header[0], header[2], header[5]
        if ptype != 4:  # PT_NOTE
            continue
        pos, end = off, off + filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12: pos + 12 + namesz]
            if name == b"Xen\x00" and ntype == 18:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed ``newc`` cpio archive of (path, mode, content|symlink target)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out += b"070701" + b"".join(f"{f:08X}".encode() for f in fields) + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build(out: Path, debs: Path) -> None:
    pkg = kernel_package()
    kver = pkg.removeprefix("linux-image-")
    with tempfile.TemporaryDirectory(prefix="kvmnet-tiny-guest-") as tmp:
        tree = Path(tmp)
        run(["dpkg-deb", "-x", str(download(pkg, debs)), str(tree / "kernel")])
        run(["dpkg-deb", "-x", str(download("busybox-static", debs)), str(tree / "busybox")])
        files = module_files(tree / "kernel", kver)
        order = load_order(MODULES, files)
        dirs = ["bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp"]
        entries: list[tuple[str, int, bytes]] = [(d, 0o40755, b"") for d in dirs]
        entries += [
            ("bin/busybox", 0o100755, (tree / "busybox" / "bin" / "busybox").read_bytes()),
            ("bin/sh", 0o120777, b"busybox"),
            ("init", 0o100755, INIT.encode()),
            ("etc/udhcpc.script", 0o100755, UDHCPC_SCRIPT.encode()),
            ("etc/modules.order", 0o100644, "\n".join(order).encode() + b"\n"),
            ("dev/console", 0o20600, b""),  # rdev is 0 here; devtmpfs supplies the real one
        ]
        entries += [(f"lib/modules/{m}.ko", 0o100644, module_bytes(files[m])) for m in order]
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=out.parent))
        try:
            staging.chmod(0o755)
            bzimage = tree / "kernel" / "boot" / f"vmlinuz-{kver}"
            shutil.copyfile(bzimage, staging / "vmlinuz")
            vmlinux = pvh_vmlinux(bzimage.read_bytes())
            if vmlinux is not None:
                (staging / "vmlinux").write_bytes(vmlinux)
            (staging / "initrd.gz").write_bytes(gzip.compress(cpio_newc(entries), 6))
            (staging / "modules.txt").write_text("\n".join(order) + "\n")
            staging.rename(out)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not (out / "initrd.gz").exists():
                raise
            # Another build (a parallel test run) finished first; its result is the same.
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=cache_root())
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args()
    cache: Path = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    kver = kernel_package().removeprefix("linux-image-")
    # The key covers this script too: a changed /init must not reuse an old initramfs.
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]
    out = cache / f"{kver}-{digest}"
    if args.force and out.exists():
        shutil.rmtree(out)
    if not (out / "initrd.gz").exists():
        build(out, cache / "debs")
        # Builds by an older version of this script, or of an older kernel, are of no use now.
        for old in cache.glob("*-*"):
            if old != out and old.is_dir() and old.name != "debs" and old.name[0] != ".":
                shutil.rmtree(old, ignore_errors=True)
        for deb in (cache / "debs").glob("linux-image-*.deb"):
            if not deb.name.startswith(f"linux-image-{kver}_"):
                deb.unlink()
    # The PVH vmlinux boots seconds faster under TCG; the bzImage is the fallback.
    kernel = out / "vmlinux" if (out / "vmlinux").exists() else out / "vmlinuz"
    result = {"kernel": str(kernel), "initrd": str(out / "initrd.gz"), "version": kver}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
