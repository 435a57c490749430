"""Safe extraction of one layer tar into a directory, the way overlayfs wants a lowerdir.

Terms:

- *target*: the directory the layer is unpacked into (a fresh, private temp dir).
- *whiteout*: a tar entry ``dir/.wh.NAME`` says "NAME, present in a lower layer, is deleted here".
  Overlayfs spells that as a character device 0/0 at ``dir/NAME``.
- *opaque directory*: ``dir/.wh..wh..opq`` says "hide everything lower layers have in ``dir``".
  Overlayfs spells that as the xattr ``trusted.overlay.opaque=y`` on ``dir``.

The rules: those that need only the header are one function each in
:mod:`dockyard.snapshots.entry_rules`; those that need the filesystem are one method each of
:class:`LayerExtractor`; bounds on expansion are in :mod:`dockyard.snapshots.bounds`.

- Entry names are cleaned lexically: leading ``/`` is dropped (absolute names are neutralised, as
  Docker does), ``.`` and empty components go, ``..`` pops a component; a ``..`` above the target
  rejects the tar (:class:`CorruptContent`).
- Parent directories are resolved one component at a time *inside* the target. A symlink met on
  the way is followed within the target: an absolute link target is taken relative to the target
  (as a chroot would), a relative one that climbs above the target rejects the tar. This covers
  symlinks planted earlier in the same tar. Missing parents are created (0755).
- The final component is never followed: an existing entry there is replaced (unless both are
  directories, which merge), so a later duplicate wins and nothing is written through a symlink.
  Files are opened with ``O_NOFOLLOW | O_EXCL``.
- Hard links must name an existing non-directory inside the target.
- Relative symlinks whose target climbs above the layer are rejected, as Docker does.
- Devices: as root, character and block devices are created; without root they are skipped (as
  Docker does in a user namespace). FIFOs are always created.
- Ownership (as root), modes including setuid/setgid/sticky, xattrs (``SCHILY.xattr.*``) and
  mtimes are kept; directory modes and mtimes are applied last, deepest first.
- A truncated or malformed tar raises :class:`CorruptContent`; so do entry types Docker does not
  apply, NUL bytes or over-long components in names, impossible owners, and PAX or GNU
  long-name records over 1 MiB (refused before they are read into memory).
- ``.wh..wh.*`` AUFS metadata other than the opaque marker is skipped, as moby does.
- Bytes written for files count against :class:`WriteBudget` (a sparse entry cannot fill the disk).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import CorruptContent, DockyardError
from dockyard.snapshots.bounds import LayerLimits, WriteBudget
from dockyard.snapshots.entry_rules import (
    OPAQUE_XATTR,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    check_names,
    check_owner,
    check_special_size,
    check_type,
    clean_name,
    is_aufs_metadata,
    is_whiteout,
    kept_mode,
    mtime_ns,
    symlink_escapes,
    whiteout_target,
    xattrs_to_set,
)

__all__ = ["OPAQUE_XATTR", "WHITEOUT_META_PREFIX", "WHITEOUT_OPAQUE", "WHITEOUT_PREFIX", "LayerExtractor",
           "StrictTarInfo", "clean_name", "unpacked_size"]

MAX_SYMLINK_HOPS = 40
CHUNK = 1 << 20


class StrictTarInfo(tarfile.TarInfo):
    """A TarInfo that turns a truncated or corrupt header into an error at any offset.

    (Python's tarfile quietly treats those as the end of the archive past the first member.)
    """

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> StrictTarInfo:  # type: ignore[override]
        try:
            return super().frombuf(buf, encoding, errors)  # type: ignore[return-value]
        except tarfile.TruncatedHeaderError:  # type: ignore[attr-defined]
            raise CorruptContent("invalid tar: unexpected end of data") from None
        except (tarfile.EOFHeaderError, tarfile.EmptyHeaderError):  # type: ignore[attr-defined]
            raise
        except tarfile.InvalidHeaderError as e:  # type: ignore[attr-defined]
            raise CorruptContent(f"invalid tar header: {e}") from None

    def _proc_pax(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        check_special_size(self)  # tarfile would read the whole record into memory
        return super()._proc_pax(tarfile)  # type: ignore[misc]

    def _proc_gnulong(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        check_special_size(self)
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]


@dataclass
class _DeferredDir:
    parts: list[str]  # components below the target, real directories when recorded
    mode: int
    mtime_ns: int


@dataclass
class LayerExtractor:
    """Applies tar entries to ``target`` following the module's rules.

    ``privileged`` (default: running as root) decides whether ownership is kept and device
    nodes and whiteouts are created. ``budget`` bounds the bytes written (default: the limits
    of :meth:`LayerLimits.from_env`).
    """

    target: Path
    privileged: bool = field(default_factory=lambda: os.geteuid() == 0)
    _dirs: list[_DeferredDir] = field(default_factory=list)
    budget: WriteBudget = field(default_factory=lambda: WriteBudget(LayerLimits.from_env()))

    def __post_init__(self) -> None:
        self._root = os.path.realpath(self.target)
        self._handlers: dict[bytes, Callable[[tarfile.TarFile, tarfile.TarInfo, str], None]] = {
            tarfile.DIRTYPE: self._make_dir,
            tarfile.SYMTYPE: self._make_symlink,
            tarfile.LNKTYPE: self._make_hardlink,
            tarfile.CHRTYPE: self._make_device,
            tarfile.BLKTYPE: self._make_device,
            tarfile.FIFOTYPE: self._make_fifo,
        }

    # -- driving -------------------------------------------------------------------------

    def extract_stream(self, stream: BinaryIO) -> None:
        """Read a plain (uncompressed) tar from ``stream`` and apply every entry, streaming."""
        try:
            tar = tarfile.open(fileobj=stream, mode="r|", tarinfo=StrictTarInfo)
        except tarfile.ReadError as e:
            if str(e) == "empty file":
                return  # no bytes at all: an empty layer, as Go's tar reader sees it
            raise CorruptContent(f"invalid tar: {e}") from None
        with tar:
            for member in tar:
                try:
                    self.apply(tar, member)
                except OSError as e:
                    if e.errno != errno.ENAMETOOLONG:
                        raise
                    # a path past PATH_MAX (each component was checked against NAME_MAX)
                    raise CorruptContent(f"invalid tar entry {member.name[:80]!r}...: file name too long") from None
        self.finish()

    @staticmethod
    def check_entry(member: tarfile.TarInfo) -> list[str]:
        """The header-only rules of :mod:`entry_rules`; returns the cleaned components."""
        check_names(member)
        check_type(member)
        check_owner(member)
        return clean_name(member.name)

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Apply one entry."""
        parts = self.check_entry(member)
        if not parts or is_aufs_metadata(parts):
            # the target itself ("./") keeps the target's own metadata; AUFS metadata is dropped
            self._skip_data(tar, member)
            return
        base = parts[-1]
        if is_whiteout(base):
            self._skip_data(tar, member)  # a whiteout's body, if any, means nothing
            self._whiteout(member, parts)
            return
        parent = self.resolve_dir(parts[:-1], create=True)
        path = os.path.join(parent, base)
        self._clear_for(path, member)
        handler = self._handlers.get(member.type, self._make_file)
        if member.isreg():
            handler = self._make_file
        handler(tar, member, path)

    def finish(self) -> None:
        """Apply directory modes and mtimes, deepest first (creating children changed them)."""
        for d in sorted(self._dirs, key=lambda d: len(d.parts), reverse=True):
            fd = self._open_dir_nofollow(d.parts)
            if fd is None:
                continue  # replaced by a later entry
            try:
                os.fchmod(fd, d.mode)
                os.utime(fd, ns=(d.mtime_ns, d.mtime_ns))
            finally:
                os.close(fd)
        self._dirs.clear()

    def _open_dir_nofollow(self, parts: list[str]) -> int | None:
        """Open directory ``parts`` below the target without following any symlink, or None."""
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._root, flags)
        try:
            for comp in parts:
                try:
                    nxt = os.open(comp, flags, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        os.close(fd)
                        return None
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- path resolution -------------------------------------------------------------------

    def resolve_dir(self, parts: list[str], *, create: bool) -> str:
        """The real path of directory ``parts`` inside the target, following symlinks in scope.

        Missing components are created when ``create``; otherwise they are an error.
        """
        todo = list(reversed(parts))  # a stack: next component on top
        resolved: list[str] = []
        hops = 0
        shown = "/".join(parts)
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if not resolved:
                    raise CorruptContent(f"invalid tar entry {shown!r}: a symlink points outside of the layer")
                resolved.pop()
                continue
            path = os.path.join(self._root, *resolved, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if not create:
                    raise CorruptContent(f"invalid tar entry {shown!r}: no such directory in the layer") from None
                os.mkdir(path, 0o755)
                resolved.append(comp)
                continue
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise CorruptContent(f"invalid tar entry {shown!r}: too many levels of symbolic links")
                link = os.readlink(path)
                if link.startswith("/"):
                    resolved = []  # absolute: relative to the layer's root, as inside the container
                todo.extend(reversed(link.split("/")))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise CorruptContent(f"invalid tar entry {shown!r}: {comp!r} is not a directory")
            resolved.append(comp)
        return os.path.join(self._root, *resolved)

    def _clear_for(self, path: str, member: tarfile.TarInfo) -> None:
        """Remove what is at ``path`` unless a directory meets a directory (later entry wins)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if member.isdir():
                return
            shutil.rmtree(path)
        else:
            os.unlink(path)

    # -- entry kinds ---------------------------------------------------------------------

    def _make_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            src = tar.extractfile(member)
            written = 0
            if src is not None:
                while written < member.size:
                    chunk = src.read(min(CHUNK, member.size - written))
                    if not chunk:
                        break
                    self.budget.charge(len(chunk))  # before writing: a sparse entry expands on disk
                    _write_all(fd, chunk)
                    written += len(chunk)
            if written != member.size:
                raise CorruptContent("invalid tar: unexpected end of data")
        finally:
            os.close(fd)
        self._set_metadata(path, member)

    def _make_dir(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        if not os.path.lexists(path):
            os.mkdir(path, 0o700)
        self._set_owner_xattrs(path, member)
        parts = os.path.relpath(path, self._root).split(os.sep)
        self._dirs.append(_DeferredDir(parts, kept_mode(member), mtime_ns(member)))

    def _make_symlink(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        link = member.linkname
        dir_parts = [p for p in os.path.relpath(os.path.dirname(path), self._root).split(os.sep) if p != "."]
        if symlink_escapes(dir_parts, link):
            raise CorruptContent(f"invalid symlink {member.name!r} -> {link!r}")
        os.symlink(link, path)
        self._set_metadata(path, member)

    def _make_hardlink(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        """Link to a non-directory of *this* layer (moby links inside the layer's own, fresh
        directory, so a file of a lower layer is "no such file"). The source's parents are
        resolved in scope; a symlink as the source is linked itself, never followed."""
        parts = clean_name(member.linkname)
        if not parts:
            raise CorruptContent(f"invalid hardlink {member.name!r} -> {member.linkname!r}")
        try:
            source = os.path.join(self.resolve_dir(parts[:-1], create=False), parts[-1])
        except CorruptContent as e:
            raise CorruptContent(f"invalid hardlink {member.name!r} -> {member.linkname!r}: no such file in the "
                                 f"layer ({e.message})") from None
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise CorruptContent(
                f"invalid hardlink {member.name!r} -> {member.linkname!r}: no such file in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise CorruptContent(f"invalid hardlink {member.name!r} -> {member.linkname!r}: a directory")
        os.link(source, path, follow_symlinks=False)

    def _make_device(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        """As Docker running as root, create the node. It gives no way to the host's devices:
        the layer lies under a 0700 directory, and in a container the devices cgroup lets
        only the default devices (and ``--device`` ones) be opened, whatever nodes exist."""
        if not self.privileged:
            return  # as Docker does without the privilege to mknod (a user namespace): skip the node
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        self._set_metadata(path, member)

    def _make_fifo(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        os.mkfifo(path, 0o600)
        self._set_metadata(path, member)

    def _whiteout(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        base = parts[-1]
        parent = self.resolve_dir(parts[:-1], create=True)
        if base == WHITEOUT_OPAQUE:
            self._setxattr(parent, OPAQUE_XATTR, b"y", required=True)
            return
        name = whiteout_target(member.name, base)
        path = os.path.join(parent, name)
        self._clear_for(path, tarfile.TarInfo(name))
        if not self.privileged:
            raise DockyardError("cannot create an overlay whiteout without root (mknod of a 0/0 device)")
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        os.lchown(path, member.uid, member.gid)

    # -- metadata ------------------------------------------------------------------------

    def _set_owner_xattrs(self, path: str, member: tarfile.TarInfo) -> None:
        if self.privileged:
            os.lchown(path, member.uid, member.gid)
        for name, value in xattrs_to_set(member):
            self._setxattr(path, name, value, required=False)

    def _set_metadata(self, path: str, member: tarfile.TarInfo) -> None:
        self._set_owner_xattrs(path, member)  # chown first: it clears setuid/setgid bits
        if not member.issym():
            os.chmod(path, kept_mode(member))
        mtime = mtime_ns(member)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def _setxattr(self, path: str, name: str, value: bytes, *, required: bool) -> None:
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as e:
            # Unprivileged, trusted.* and security.* are out of reach; some filesystems lack
            # xattrs or refuse them on symlinks. Docker ignores those for ordinary xattrs too.
            if required and self.privileged:
                raise DockyardError(f"setting {name} on {path}: {e.strerror}") from None
            if e.errno in (errno.E2BIG, errno.ERANGE):
                raise CorruptContent(f"invalid xattr {name!r}: value of {len(value)} bytes is too large") from None
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES, errno.EINVAL):
                raise

    @staticmethod
    def _skip_data(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Read and drop an entry's data, so a truncated tar is still noticed."""
        if not member.isreg() or member.size == 0:
            return
        src = tar.extractfile(member)
        remaining = member.size
        while src is not None and remaining > 0:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise CorruptContent("invalid tar: unexpected end of data")
            remaining -= len(chunk)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def unpacked_size(root: Path) -> int:
    """Bytes of regular files under ``root``, each inode counted once (Docker's layer size)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
