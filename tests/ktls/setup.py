#!/usr/bin/python3
"""One-time setup for the kTLS VM: fetch a kernel with tls.ko, build a boot image; root filesystems.

    tests/ktls/setup.py [--force] [PROFILE]   prints the image folder on stdout
    tests/ktls/setup.py --root PROFILE        the profile's root filesystem (debootstrap once)
    tests/ktls/setup.py --build PROFILE       kttpd built inside that root (prints the binary)

PROFILE is one of profiles.PROFILES (default deb12). Downloads (apt-get
download, nothing is installed) the profile's stock Debian kernel
(CONFIG_TLS=m, 9p; from 7.x linux-image-* pulls linux-binary-* and
linux-modules-*, all three are fetched) and busybox-static, then writes:

    CACHE/<kernel version>/vmlinux         ELF kernel (PVH entry), from the bzImage (xz or zstd)
    CACHE/<kernel version>/initramfs.cpio  busybox, init.sh, the modules below (.ko.xz unpacked)
    CACHE/<kernel version>/stamp           hash of init.sh and the module list:
                                           vm-run redoes setup when it changes
    CACHE/current                          the <kernel version> of deb12
    CACHE/current-PROFILE                  the same for the other profiles
    CACHE/apt-trixie/                      a private apt configuration (sources.list, lists,
                                           archives) for trixie and trixie-backports: the
                                           host's /etc/apt is never touched
    CACHE/trixie-root/, trixie-root.stamp  debootstrap --variant=minbase trixie with
                                           ROOT_PACKAGES (about 600 MB), built once

CACHE is $KTTPD_KTLS_CACHE, else /var/cache/kttpd-ktls as root, else
${XDG_CACHE_HOME:-~/.cache}/kttpd-ktls. $KTTPD_KTLS_KERNEL_PKG names another
kernel package for deb12. Nothing here is kept in the repository.
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
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import profiles  # noqa: E402

# Loaded in this order by init.sh (each after its own dependencies). tcp_diag
# (sock_diag for TCP: ss -tie, kttpd's placement query) is loaded here
# because the kernel's on-demand modprobe runs in the chroot, where the
# host's /lib/modules has no modules for this kernel.
# Newer kernels build some of these in (virtio_pci, ctr) or fold them into
# others (the x86 ChaCha/Poly1305 code moved to lib/crypto): only REQUIRED
# must exist as modules, the others are loaded where they are modules.
MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay", "aesni_intel",
           "ghash_clmulni_intel", "ghash_generic", "ctr", "gcm", "ccm",
           "chacha_x86_64", "poly1305_x86_64", "chacha", "chacha_generic",
           "poly1305_generic", "chacha20poly1305", "tls", "inet_diag", "tcp_diag"]
REQUIRED = {"9pnet_virtio", "9p", "overlay", "tls", "tcp_diag"}

# What the trixie root filesystem holds: kttpd's build and test needs.
ROOT_PACKAGES = ["gcc", "make", "pkg-config", "libssl-dev", "libevent-dev",
                 "libhttp-parser-dev", "libnghttp2-dev", "zlib1g-dev", "libconfuse-dev",
                 "python3", "python3-h2", "curl", "openssl", "nghttp2-client", "iproute2",
                 "media-types", "ca-certificates"]
MIRROR = "http://deb.debian.org/debian"


class SetupError(Exception):
    pass


def cache_dir():
    if os.environ.get("KTTPD_KTLS_CACHE"):
        return Path(os.environ["KTTPD_KTLS_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/kttpd-ktls")
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "kttpd-ktls"


def current_file(profile):
    name = "current" if profile.name == profiles.DEFAULT else f"current-{profile.name}"
    return cache_dir() / name


def current_image(profile=None):
    """The image folder of the profile (default deb12) if setup already ran, else None."""
    cur = current_file(profile or profiles.PROFILES[profiles.DEFAULT])
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


def apt_opts(profile):
    """apt-get/apt-cache options reaching the profile's suite; [] for this host's own apt.

    A private sources.list, state and cache under CACHE/apt-<suite>, so the
    host's /etc/apt and its package lists stay as they are."""
    if profile.suite is None:
        return []
    d = cache_dir() / f"apt-{profile.suite}"
    for sub in ("etc", "state/lists/partial", "cache/archives/partial"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    key = "/usr/share/keyrings/debian-archive-keyring.gpg"
    src = "".join(f"deb [signed-by={key}] {MIRROR} {s} main\n"
                  for s in (profile.suite, f"{profile.suite}-backports"))
    sl = d / "etc" / "sources.list"
    if not sl.exists() or sl.read_text() != src:
        sl.write_text(src)
    opts = ["-o", f"Dir::Etc::SourceList={sl}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State={d / 'state'}", "-o", f"Dir::Cache={d / 'cache'}",
            "-o", "Dir::State::status=/dev/null", "-o", "APT::Architecture=amd64"]
    if not any((d / "state" / "lists").glob("*_Packages*")):
        print(f"ktls setup: apt-get update for {profile.suite} (private config in {d})",
              file=sys.stderr)
        run(["apt-get", "-q"] + opts + ["update"])
    return opts


def kernel_package(profile, opts):
    pkg = os.environ.get("KTTPD_KTLS_KERNEL_PKG")
    if pkg and profile.name == profiles.DEFAULT:
        return pkg
    meta = "linux-image-amd64"
    if profile.kernel == "newest":  # trixie-backports' version of the meta package
        versions = [line.split("|")[1].strip() for line in
                    run(["apt-cache"] + opts + ["madison", meta]).splitlines() if "|" in line]
        if not versions:
            raise SetupError(f"apt-cache madison {meta} lists no version")
        newest = versions[0]
        for v in versions[1:]:
            if subprocess.run(["dpkg", "--compare-versions", v, "gt", newest]).returncode == 0:
                newest = v
        meta = f"{meta}={newest}"
    out = run(["apt-cache"] + opts + ["depends", meta])
    m = re.search(r"Depends: (linux-image-[0-9][^\s]*-amd64)", out)
    if not m:
        raise SetupError(f"apt-cache depends {meta} names no kernel; "
                         "run apt-get update, or set KTTPD_KTLS_KERNEL_PKG")
    return m.group(1)


def kernel_parts(kpkg, opts):
    """The kernel package and, from 7.x, the linux-binary-* and linux-modules-* it depends on."""
    out = run(["apt-cache"] + opts + ["depends", kpkg])
    return [kpkg] + sorted(set(re.findall(r"Depends: (linux-(?:binary|modules)-[0-9]\S*)", out)))


def download(pkgs, into, opts=()):
    # apt-get download drops privileges to _apt, which must be able to write.
    os.chmod(into, 0o777)
    run(["apt-get", "download", "-q"] + list(opts) + pkgs, cwd=into)
    for pkg in pkgs:
        debs = list(Path(into).glob(f"{pkg}_*.deb"))
        if not debs:
            raise SetupError(f"apt-get download {pkg} left no .deb")
        run(["dpkg-deb", "-x", str(debs[0]), str(Path(into) / "root")])


def extract_vmlinux(bzimage, out):
    """The uncompressed ELF inside a bzImage (xz through Debian 12, zstd in 13)."""
    data = bzimage.read_bytes()
    at = data.find(b"\xfd7zXZ\x00")
    zat = data.find(b"\x28\xb5\x2f\xfd")
    if at >= 0:
        elf = lzma.LZMADecompressor().decompress(data[at:])
    elif zat >= 0:
        # what follows the zstd frame makes zstd complain; the frame itself is whole
        try:
            p = subprocess.run(["zstd", "-dc"], input=data[zat:], capture_output=True)
        except FileNotFoundError:
            raise SetupError(f"{bzimage}: zstd payload, and no zstd (apt-get install zstd)")
        elf = p.stdout
    else:
        raise SetupError(f"{bzimage}: no xz or zstd payload (not a Debian bzImage?)")
    if elf[:4] != b"\x7fELF":
        raise SetupError(f"{bzimage}: payload is not an ELF kernel")
    out.write_bytes(elf)


def find_kernel(root, kver):
    """(bzImage, module folder) in an unpacked kernel package (/boot or, from 7.x, /usr/lib)."""
    for mods in (root / "lib" / "modules" / kver, root / "usr" / "lib" / "modules" / kver):
        if mods.is_dir():
            break
    else:
        raise SetupError(f"no module folder for {kver}")
    for image in (root / "boot" / f"vmlinuz-{kver}", mods / "vmlinuz"):
        if image.is_file():
            return image, mods
    raise SetupError(f"no vmlinuz for {kver}")


def module_index(moddir):
    """name (underscores) -> path, for every .ko (or .ko.xz) of the kernel."""
    index = {}
    for suffix in (".ko", ".ko.xz"):
        for p in moddir.rglob("*" + suffix):
            index[p.name[:-len(suffix)].replace("-", "_")] = p
    return index


def module_bytes(path):
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def module_deps(path):
    m = re.search(rb"depends=([^\0]*)\0", module_bytes(path))
    deps = m.group(1).decode() if m else ""
    return [d.replace("-", "_") for d in deps.split(",") if d]


def module_order(index):
    order = []

    def visit(name):
        if name in order:
            return
        if name not in index:
            if name in REQUIRED:
                raise SetupError(f"kernel module {name}.ko not in the kernel package")
            return  # built in, or merged into another module on this kernel
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


def build_initramfs(moddir, busybox, kver, out):
    index = module_index(moddir)
    order = module_order(index)
    D, F, X, L = 0o040755, 0o100644, 0o100755, 0o120777
    entries = [(d, D, b"") for d in ("bin", "sbin", "dev", "proc", "sys", "lib",
                                     "lib/modules", f"lib/modules/{kver}")]
    entries.append(("bin/busybox", X, busybox.read_bytes()))
    for tool in ("sh", "mount", "mkdir", "insmod", "depmod", "chroot", "ip",
                 "poweroff", "cat", "echo", "sync", "sleep", "umount", "test"):
        entries.append((f"bin/{tool}", L, b"busybox"))
    entries.append(("sbin/modprobe", L, b"../bin/busybox"))
    entries.append(("init", X, (HERE / "init.sh").read_bytes()))
    entries.append(("modules.order", F, "".join(f"{m}.ko\n" for m in order).encode()))
    for name in order:
        entries.append((f"lib/modules/{kver}/{name}.ko", F, module_bytes(index[name])))
    cpio_newc(entries, out)
    return order


def setup(force=False, profile=None):
    profile = profile or profiles.PROFILES[profiles.DEFAULT]
    if not force and current_image(profile):
        return current_image(profile)
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SetupError(f"cannot create cache folder {cache}: {e} (set KTTPD_KTLS_CACHE)")
    opts = apt_opts(profile)
    kpkg = kernel_package(profile, opts)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        tmp = Path(tmp)
        parts = kernel_parts(kpkg, opts)
        print(f"ktls setup: downloading {' '.join(parts)} and busybox-static into {cache}",
              file=sys.stderr)
        (tmp / "k").mkdir()
        (tmp / "bb").mkdir()
        download(parts, tmp / "k", opts)
        download(["busybox-static"], tmp / "bb")   # this host's: any busybox runs the initramfs
        root = tmp / "k" / "root"
        kvers = sorted({p.name for d in (root / "lib" / "modules", root / "usr" / "lib" / "modules")
                        if d.is_dir() for p in d.iterdir()})
        if len(kvers) != 1:
            raise SetupError(f"{kpkg}: expected one module folder, found {kvers}")
        kver = kvers[0]
        image, moddir = find_kernel(root, kver)
        stage = tmp / "image"
        stage.mkdir()
        extract_vmlinux(image, stage / "vmlinux")
        order = build_initramfs(moddir, tmp / "bb" / "root" / "bin" / "busybox", kver,
                                stage / "initramfs.cpio")
        (stage / "kernel-version").write_text(kver + "\n")
        (stage / "stamp").write_text(image_stamp())
        final = cache / kver
        if final.exists():
            shutil.rmtree(final)
        stage.rename(final)
    cur = current_file(profile)
    cur.with_suffix(".tmp").write_text(kver + "\n")
    cur.with_suffix(".tmp").rename(cur)
    print(f"ktls setup: {final} ready ({len(order)} modules)", file=sys.stderr)
    return final


# ---------------------------------------------------------------- root filesystems

def root_stamp(profile):
    return hashlib.sha256(" ".join([profile.suite, MIRROR] + ROOT_PACKAGES).encode()).hexdigest()


def rootfs(profile, build=True):
    """The profile's root filesystem: / for deb12, else CACHE/<suite>-root (debootstrap once).

    None when it is not there and build is False."""
    if not profile.own_root:
        return Path("/")
    cache = cache_dir()
    root, stamp = cache / f"{profile.suite}-root", cache / f"{profile.suite}-root.stamp"
    try:
        if root.is_dir() and stamp.read_text() == root_stamp(profile):
            return root
    except OSError:
        pass
    if not build:
        return None
    if os.geteuid() != 0:
        raise SetupError(f"the {profile.suite} root filesystem is built by debootstrap, as root")
    if not shutil.which("debootstrap"):
        raise SetupError("debootstrap not found (apt-get install debootstrap)")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"{profile.suite}-root.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"ktls setup: debootstrap {profile.suite} into {root} (once, a few minutes)",
          file=sys.stderr)
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(ROOT_PACKAGES),
         profile.suite, str(tmp), MIRROR])
    stamp.unlink(missing_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    stamp.write_text(root_stamp(profile))
    return root


def build_kttpd(profile, repo=REPO):
    """kttpd compiled inside the profile's root (its OpenSSL and libraries); -> the binary.

    The repository is bound at its own path in a private mount namespace, so
    the build folder (repo/build-SUITE) is the one the VM sees."""
    if not profile.own_root:
        return repo / "build" / "kttpd"
    root = rootfs(profile)
    (root / str(repo).lstrip("/")).mkdir(parents=True, exist_ok=True)
    inner = f"cd {repo} && make -j2 WERROR=1 BUILD={profile.build_dir()} all"
    # one line per object is noise here; the errors, if any, are on stderr
    p = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"mount --bind {repo} {root}{repo} && chroot {root} sh -c '{inner}'"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise SetupError(f"building kttpd in {root} failed:\n{p.stdout[-1500:]}{p.stderr[-3000:]}")
    return repo / profile.build_dir() / "kttpd"


def main():
    args = sys.argv[1:]
    force = "--force" in args
    names = [a for a in args if not a.startswith("--")]
    try:
        profile = profiles.PROFILES[names[0] if names else profiles.DEFAULT]
    except KeyError:
        print(f"ktls setup: no profile {names[0]} (have {', '.join(profiles.PROFILES)})",
              file=sys.stderr)
        return 2
    try:
        if "--root" in args:
            print(rootfs(profile))
        elif "--build" in args:
            print(build_kttpd(profile))
        else:
            print(setup(force=force, profile=profile))
    except SetupError as e:
        print(f"ktls setup: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
