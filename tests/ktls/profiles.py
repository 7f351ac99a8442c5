"""The kTLS VM profiles: which kernel boots, which root filesystem it runs, and what that stack can do.

    deb12            Debian 12: linux-image-amd64 from this host's apt (6.1), the host's
                     own root (OpenSSL 3.0), build/kttpd as built here
    deb13            Debian 13: trixie's linux-image-amd64 (6.12), a trixie root
                     filesystem (debootstrap, OpenSSL 3.5), kttpd built inside it
    deb13-backports  the same root under the newest trixie-backports kernel (7.x)

The facts under `can` are what the suite expects of kttpd on that stack; they
are written down here from what OpenSSL and Linux are documented (and were
seen in these VMs) to do, and kttpd finds them by probing, so a wrong fact
here or a wrong probe there is a failing case:

    tls13_rx   OpenSSL installs TLS 1.3 receive keys in the kernel (OpenSSL 3.2+)
    rekey      the kernel takes new keys on a TLS 1.3 socket that has some
               (Linux 6.14+) and OpenSSL hands them over (its record layer of 3.2+):
               a client KeyUpdate is followed on kTLS RX, and one with
               update_requested is answered under kTLS TX
    ccm13      OpenSSL offloads TLS 1.3 AES-128-CCM (3.0 refuses it, 3.2+ takes it)
"""

import os
from dataclasses import dataclass, field

TRIXIE = "trixie"


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    suite: str | None        # None: this host's apt and root; else a Debian suite by private apt
    kernel: str              # "default": what linux-image-amd64 depends on; "newest": its newest version
    can: dict = field(default_factory=dict)

    @property
    def own_root(self):
        """True when the VM runs a root filesystem of its own (and kttpd built in it)."""
        return self.suite is not None

    def build_dir(self):
        """kttpd's build folder (relative to the repo) for this profile."""
        return "build" if not self.own_root else f"build-{self.suite}"


PROFILES = {p.name: p for p in (
    Profile("deb12", "Debian 12 (6.1, OpenSSL 3.0)", None, "default",
            {"tls13_rx": False, "rekey": False, "ccm13": False}),
    Profile("deb13", "Debian 13 (6.12, OpenSSL 3.5)", TRIXIE, "default",
            {"tls13_rx": True, "rekey": False, "ccm13": True}),
    Profile("deb13-backports", "Debian 13, trixie-backports kernel (7.x, OpenSSL 3.5)", TRIXIE,
            "newest", {"tls13_rx": True, "rekey": True, "ccm13": True}),
)}
DEFAULT = "deb12"


def current():
    """The profile the in-VM suite runs under ($KTTPD_KTLS_PROFILE, set by vm-run)."""
    return PROFILES[os.environ.get("KTTPD_KTLS_PROFILE") or DEFAULT]
