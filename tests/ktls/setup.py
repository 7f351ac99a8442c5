#!/usr/bin/python3
"""One-time setup for the kTLS VM: fetch a kernel with tls.ko, build a boot image.

    tests/ktls/setup.py [--force]      prints the image folder on stdout

Downloads (apt-get download, nothing is installed) Debian's stock kernel
(linux-image-amd64 -> linux-image-6.1.0-NN-amd64: CONFIG_TLS=m, 9p) and
busybox-static, then writes into the cache folder:

    CACHE/<kernel version>/vmlinux         ELF kernel (PVH entry), from the bzImage
    CACHE/<kernel version>/initramfs.cpio  busybox, init.sh, the modules below
    CACHE/<kernel version>/stamp           hash of init.sh and the module list:
                                           vm-run redoes setup when it changes
    CACHE/current                          the <kernel version> to use

CACHE is $KTTPD_KTLS_CACHE, else /var/cache/kttpd-ktls as root, else
${XDG_CACHE_HOME:-~/.cache}/kttpd-ktls. $KTTPD_KTLS_KERNEL_PKG names another
kernel package. Nothing here is kept in the repository.
"""

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Loaded in this order by init.sh (each after its own dependencies). tcp_diag
# (sock_diag for TCP: ss -tie, kttpd's placement query) is loaded here
# because the kernel's on-demand modprobe runs in the chroot, where the
# host's /lib/modules has no modules for this kernel.
MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "aesni_intel",
           "ghash_clmulni_intel", "ghash_generic", "ctr", "gcm", "ccm",
           "chacha_x86_64", "poly1305_x86_64", "chacha20poly1305", "tls",
           "inet_diag", "tcp_diag"]


class SetupError(Exception):
    pass


def cache_dir():
    if os.environ.get("KTTPD_KTLS_CACHE"):
        return Path(os.environ["KTTPD_KTLS_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/kttpd-ktls")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "kttpd-ktls"


def current_image():
    """The image folder if setup already ran, else None."""
    cur = cache_dir() / "current"
    try:
        d = cache_dir() / cur.read_text().strip()
    except OSError:
        return None
    ok = (d / "vmlinux").is_file() and (d / "initramfs.cpio").is_file()
    try:
        fresh = (d / "stamp").read_text() == image_stamp()
    except OSError:
        fresh = False
    return d if ok and fresh else None


def image_stamp():
    """Changes when what goes into the initramfs from this folder changes."""
    h = hashlib.sha256((HERE / "init.sh").read_bytes())
    h.update(" ".join(MODULES).encode())
    return h.hexdigest()


def run(argv, cwd=None):
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SetupError(f"{argv[0]} not found (Debian tools apt-get and dpkg-deb are needed)")
    if p.returncode != 0:
        raise SetupError(f"{' '.join(argv)} failed: {p.stderr.strip()[-500:]}")
    return p.stdout


def kernel_package():
    pkg = os.environ.get("KTTPD_KTLS_KERNEL_PKG")
    if pkg:
        return pkg
    out = run(["apt-cache", "depends", "linux-image-amd64"])
    m = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", out)
    if not m:
        raise SetupError("apt-cache depends linux-image-amd64 names no kernel; "
                         "run apt-get update, or set KTTPD_KTLS_KERNEL_PKG")
    return m.group(1)


def download(pkgs, into):
    # apt-get download drops privileges to _apt, which must be able to write.
    os.chmod(into, 0o777)
    run(["apt-get", "download", "-q"] + pkgs, cwd=into)
    for pkg in pkgs:
        debs = list(Path(into).glob(f"{pkg}_*.deb"))
        if not debs:
            raise SetupError(f"apt-get download {pkg} left no .deb")
        run(["dpkg-deb", "-x", str(debs[0]), str(Path(into) / "root")])


def extract_vmlinux(bzimage, out):
    """The uncompressed ELF inside a bzImage (xz, as Debian builds it)."""
    data = bzimage.read_bytes()
    at = data.find(b"\xfd7zXZ\x00")
    if at < 0:
        raise SetupError(f"{bzimage}: no xz payload (not a Debian bzImage?)")
    elf = lzma.LZMADecompressor().decompress(data[at:])
    if elf[:4] != b"\x7fELF":
        raise SetupError(f"{bzimage}: payload is not an ELF kernel")
    out.write_bytes(elf)


def module_index(moddir):
    """name (underscores) -> path, for every .ko of the kernel."""
    return {p.name[:-3].replace("-", "_"): p for p in moddir.rglob("*.ko")}


def module_deps(path):
    m = re.search(rb"depends=([^\0]*)\0", path.read_bytes())
    deps = m.group(1).decode() if m else ""
    return [d.replace("-", "_") for d in deps.split(",") if d]


def module_order(index):
    order = []

    def visit(name):
        if name in order:
            return
        if name not in index:
            raise SetupError(f"kernel module {name}.ko not in the kernel package")
        for dep in module_deps(index[name]):
            visit(dep)
        order.append(name)

    for name in MODULES:
        visit(name)
    return order


def cpio_newc(entries, out):
    """Write a newc cpio archive: entries are (name, mode, data or link target)."""
    with open(out, "wb") as f:
        for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
            name_b = name.encode() + b"\0"
            hdr = "070701" + "".join(f"{v:08X}" for v in (
                ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
            f.write(hdr.encode() + name_b)
            f.write(b"\0" * (-(110 + len(name_b)) % 4))
            f.write(data)
            f.write(b"\0" * (-len(data) % 4))


def build_initramfs(root, kver, out):
    moddir = root / "lib" / "modules" / kver
    index = module_index(moddir)
    order = module_order(index)
    D, F, X, L = 0o040755, 0o100644, 0o100755, 0o120777
    entries = [(d, D, b"") for d in ("bin", "sbin", "dev", "proc", "sys", "lib",
                                     "lib/modules", f"lib/modules/{kver}")]
    entries.append(("bin/busybox", X, (root / "bin" / "busybox").read_bytes()))
    for tool in ("sh", "mount", "mkdir", "insmod", "depmod", "chroot", "ip",
                 "poweroff", "cat", "echo", "sync", "sleep", "umount"):
        entries.append((f"bin/{tool}", L, b"busybox"))
    entries.append(("sbin/modprobe", L, b"../bin/busybox"))
    entries.append(("init", X, (HERE / "init.sh").read_bytes()))
    entries.append(("modules.order", F, "".join(f"{m}.ko\n" for m in order).encode()))
    for name in order:
        entries.append((f"lib/modules/{kver}/{name}.ko", F, index[name].read_bytes()))
    cpio_newc(entries, out)
    return order


def setup(force=False):
    if not force and current_image():
        return current_image()
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SetupError(f"cannot create cache folder {cache}: {e} (set KTTPD_KTLS_CACHE)")
    kpkg = kernel_package()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tmp = Path(tmp)
        print(f"ktls setup: downloading {kpkg} and busybox-static into {cache}", file=sys.stderr)
        download([kpkg, "busybox-static"], tmp)
        root = tmp / "root"
        kvers = [p.name for p in (root / "lib" / "modules").iterdir()]
        if len(kvers) != 1:
            raise SetupError(f"{kpkg}: expected one module folder, found {kvers}")
        kver = kvers[0]
        stage = tmp / "image"
        stage.mkdir()
        extract_vmlinux(root / "boot" / f"vmlinuz-{kver}", stage / "vmlinux")
        order = build_initramfs(root, kver, stage / "initramfs.cpio")
        (stage / "kernel-version").write_text(kver + "\n")
        (stage / "stamp").write_text(image_stamp())
        final = cache / kver
        if final.exists():
            shutil.rmtree(final)
        stage.rename(final)
    (cache / "current.tmp").write_text(kver + "\n")
    (cache / "current.tmp").rename(cache / "current")
    print(f"ktls setup: {final} ready ({len(order)} modules)", file=sys.stderr)
    return final


def main():
    try:
        print(setup(force="--force" in sys.argv[1:]))
    except SetupError as e:
        print(f"ktls setup: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
