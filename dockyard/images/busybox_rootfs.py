"""Build a busybox rootfs tarball offline, from Debian's ``busybox-static``.

The result mirrors Docker Hub's ``busybox`` image closely enough for tests and the quick start:
``/bin/busybox`` plus one hard link per applet, ``/etc/passwd`` and ``/etc/group`` with the
usual system accounts, and the empty directories a shell expects. Run it as a script to write
the tar to stdout: ``python -m dockyard.images.busybox_rootfs > rootfs.tar``.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import BinaryIO

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""

GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:8:
www-data:x:33:
operator:x:37:
staff:x:50:
users:x:100:
nogroup:x:65534:
"""

DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
        "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/sbin": 0o755, "var": 0o755,
        "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755}


def applets(busybox: Path) -> list[str]:
    """The applet names this busybox binary provides (``busybox --list``)."""
    out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout
    return sorted({name for name in out.split() if name and "/" not in name and name != "busybox"})


def write_busybox_rootfs_tar(out: BinaryIO, busybox: Path = Path("/bin/busybox")) -> None:
    """Write an uncompressed rootfs tar with busybox and its applet links to ``out``."""
    now = int(time.time())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in DIRS.items():
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, now
            tar.addfile(info)
        data = busybox.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(data), 0o755, now
        tar.addfile(info, io.BytesIO(data))
        for applet in applets(busybox):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode, link.mtime = tarfile.LNKTYPE, "bin/busybox", 0o755, now
            tar.addfile(link)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            blob = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(blob), 0o644, now
            tar.addfile(info, io.BytesIO(blob))


if __name__ == "__main__":
    write_busybox_rootfs_tar(sys.stdout.buffer)
