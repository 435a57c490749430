"""A short-lived process that reads or writes one container's filesystem from inside it.

Run as ``python -m dockyard.runtime.rootfs_helper '<request JSON>'`` by the containers service.
Before touching any path it enters the container's root and ``chroot``s there, so every path —
including absolute or ``..`` symlinks planted in the container — resolves inside the container,
exactly as Docker's chrooted archiver does. Two ways in:

- *running*: ``setns`` into the container init's mount namespace (its root and mounts, volumes
  included);
- *mount*: ``unshare(CLONE_NEWNS)``, make every mount private, mount the container's overlay on
  its ``merged`` dir and ``chroot`` into it. The mount lives only in this process's private
  namespace and vanishes with it: nothing can leak into the host's mount table. ``readonly``
  mounts stack the upper dir as one more lower layer (no workdir, so this works even while the
  container runs); writable ones use the real upper dir, so writes land there.

Request: ``{"op": "stat"|"get"|"put"|"export", "pid": int|0, "shim_pid": int, "lowers": [...], "upper", "work",
"target", "readonly": bool, "path": str, "no_overwrite_dir_non_dir": bool, "owner": [uid, gid]|null}``.

Reply on stdout: a first line of JSON — ``{"stat": {...}}`` / ``{"ok": true}`` or
``{"error": "notfound"|"invalid"|"system", "message": "..."}`` — then, for ``get`` and ``export``,
the tar. ``put`` reads the tar from stdin and ends with a second JSON line. Paths follow Docker's
``container.ResolvePath``: the path is cleaned as an absolute path (keeping a trailing ``/`` or
``/.``), its directory is resolved with symlinks followed in scope, its last element is not.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import stat
import sys
import tarfile
from typing import Any, BinaryIO

from dockyard.errors import CorruptContent, DockyardError, InvalidParameter
from dockyard.runtime import syscalls as sc
from dockyard.snapshots.copy_extract import CopyExtractor
from dockyard.snapshots.tarwriter import TreeTarWriter


class HelperError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def enter(request: dict[str, Any]) -> None:
    """Make ``/`` the container's root (see the module docstring)."""
    pid = int(request.get("pid") or 0)
    if pid:
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            # The pid may have been reused since the daemon looked: the namespace we hold is the
            # container's only if, now that it is open, the pid is still the shim's child and
            # not in the host's own mount namespace.
            if _parent_of(pid) != int(request.get("shim_pid") or 0) \
                    or os.fstat(fd).st_ino == os.stat("/proc/self/ns/mnt").st_ino:
                raise OSError(errno.ENOENT, "the container's init is gone")
            sc.setns(fd, sc.CLONE_NEWNS)
        finally:
            os.close(fd)
        os.chdir("/")
        return
    lowers: list[str] = list(request["lowers"])
    upper, work, target = request["upper"], request["work"], request["target"]
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    readonly = bool(request.get("readonly"))
    if not lowers:
        root = upper  # no image layers: the upper dir is the whole filesystem
    elif readonly:
        sc.mount("overlay", target, "overlay", sc.MS_RDONLY, "lowerdir=" + ":".join([upper, *lowers]))
        root = target
    else:
        sc.mount("overlay", target, "overlay", 0,
                 f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}")
        root = target
    _mount_volumes(root, request.get("mounts") or [], writable=not readonly and bool(lowers))
    os.chdir(root)
    os.chroot(".")
    os.chdir("/")


def _mount_volumes(root: str, mounts: list[dict[str, Any]], writable: bool) -> None:
    """Bind a stopped container's volumes and binds at their places in ``root`` (this process's
    private namespace), destinations resolved inside ``root``; a missing destination is created
    when the root is writable, else that mount is left out (nothing can be under it anyway)."""
    from dockyard.runtime.rootfs import resolve_in_root

    for m in sorted(mounts, key=lambda m: m["destination"].count("/")):
        host = resolve_in_root(root, m["destination"])
        source_is_dir = os.path.isdir(m["source"])
        if not os.path.lexists(host):
            if not writable:
                continue
            if source_is_dir:
                os.makedirs(host, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(host), exist_ok=True)
                os.close(os.open(host, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
        sc.mount(m["source"], host, None, sc.MS_BIND | sc.MS_REC)
        if m.get("readonly"):
            sc.mount(None, host, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("PPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def absolute(path: str) -> str:
    """Docker's ``PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)``."""
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/.") or path == ".":
        return cleaned.rstrip("/") + "/." if cleaned != "/" else "/."
    if path.endswith("/") and cleaned != "/":
        return cleaned + "/"
    return cleaned


def base_name(path: str) -> str:
    """Go's ``filepath.Base``."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def resolve(abs_path: str) -> str:
    """Docker's ``ResolvePath``: the directory resolved (in this chroot), the last element kept."""
    directory, _, base = abs_path.rpartition("/")
    resolved_dir = os.path.realpath(directory or "/")
    return resolved_dir.rstrip("/") + "/" + base


def lstat(request_path: str, resolved: str) -> os.stat_result:
    try:
        return os.lstat(resolved)
    except FileNotFoundError:
        raise HelperError("notfound", request_path) from None
    except OSError as e:
        raise HelperError("system", f"lstat {resolved}: {(e.strerror or str(e)).lower()}") from None


def do_stat(request: dict[str, Any]) -> tuple[dict[str, Any], str, str, os.stat_result]:
    abs_path = absolute(request["path"])
    resolved = resolve(abs_path)
    st = lstat(request["path"], resolved)
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = os.path.realpath(abs_path)
    info = {"name": base_name(abs_path), "size": st.st_size, "mode": st.st_mode,
            "mtime_ns": st.st_mtime_ns, "link_target": link}
    return info, abs_path, resolved, st


def reply(obj: dict[str, Any]) -> None:
    out = sys.stdout.buffer
    out.write(json.dumps(obj).encode() + b"\n")
    out.flush()


def do_get(request: dict[str, Any], out: BinaryIO) -> None:
    info, abs_path, resolved, st = do_stat(request)
    reply({"stat": info})
    writer = TreeTarWriter.to_stream(out)
    rebase = base_name(abs_path)
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(resolved, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            writer.add_dir(fd, rebase, include_self=True, st=st)
        finally:
            os.close(fd)
    else:
        parent, _, name = resolved.rstrip("/").rpartition("/")
        fd = os.open(parent or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            writer.add(fd, name, rebase)
        finally:
            os.close(fd)
    writer.close()
    out.flush()


def do_export(out: BinaryIO) -> None:
    reply({"ok": True})
    writer = TreeTarWriter.to_stream(out)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        writer.add_dir(fd, "", include_self=False)
    finally:
        os.close(fd)
    writer.close()
    out.flush()


def do_put(request: dict[str, Any], stream: BinaryIO) -> None:
    abs_path = absolute(request["path"])
    resolved = os.path.realpath(abs_path)  # Docker evaluates the last element here too
    st = lstat(request["path"], resolved)
    if not stat.S_ISDIR(st.st_mode):
        raise HelperError("invalid", "extraction point is not a directory")
    reply({"ok": True})
    owner = request.get("owner")
    extractor = CopyExtractor(target=resolved,  # type: ignore[arg-type]
                              no_overwrite_dir_non_dir=bool(request.get("no_overwrite_dir_non_dir")),
                              owner=(int(owner[0]), int(owner[1])) if owner else None)
    try:
        extractor.extract_stream(stream)
    except InvalidParameter as e:
        raise HelperError("invalid", e.message) from None
    except CorruptContent as e:
        raise HelperError("invalid", e.message) from None
    except (tarfile.TarError, EOFError) as e:
        raise HelperError("invalid", f"invalid tar: {e}") from None
    reply({"ok": True})


def main() -> int:
    request = json.loads(sys.argv[1])
    try:
        try:
            enter(request)
        except OSError as e:
            if e.errno == errno.ENOENT and request.get("pid"):
                raise HelperError("conflict", "the container is not running any more") from None
            raise HelperError("system", f"entering the container's filesystem: {e}") from None
        # From here on "/" is the container's: nothing may be imported from it (a planted module
        # would run as root on the host's side), so drop every path the import system searches.
        sys.path.clear()
        sys.path_importer_cache.clear()
        op = request["op"]
        if op == "stat":
            reply({"stat": do_stat(request)[0]})
        elif op == "get":
            do_get(request, sys.stdout.buffer)
        elif op == "export":
            do_export(sys.stdout.buffer)
        elif op == "put":
            do_put(request, sys.stdin.buffer)
        else:
            raise HelperError("invalid", f"unknown operation {op!r}")
    except HelperError as e:
        reply({"error": e.kind, "message": e.message})
        return 1
    except DockyardError as e:
        reply({"error": "system", "message": e.message})
        return 1
    except OSError as e:
        reply({"error": "system", "message": str(e)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
