"""COPY and ADD: what a step copies (the *plan*), its cache checksum, and writing it into a rootfs.

Terms:

- *source root*: the directory sources are taken from, a *scope* (:mod:`dockyard.build.scope`):
  the build context, or for ``COPY --from`` another stage's or an image's rootfs.
- *item*: what one source becomes: a *tree* (a directory's contents), a *file* (a file, symlink
  target, heredoc or download), or an *archive* (a local tar that ADD extracts).
- *entry*: one filesystem object an item writes, named by its path relative to the item's target.

Docker's rules (moby ``builder/dockerfile/copy.go``, ``internals.go``; BuildKit for ``--chmod`` and
heredocs, which the classic builder lacks):

- A source is taken inside the source root: a leading ``/`` or ``./`` is dropped and ``..`` never
  climbs above the root (``../x`` is ``x``, as BuildKit cleans it). Symlinks on the way and a
  symlink named as the source are followed *inside* the root; symlinks inside a copied directory
  are copied as symlinks. A name with an unescaped ``*``, ``?`` or ``[`` is a glob (Go's
  ``filepath.Match``, :mod:`dockyard.build.globs`) over every path of the root; each match is a
  source of its own.
- A directory source copies its *contents*. Several sources need a destination written with a
  trailing ``/`` (``.`` is refused, as the classic builder does): ``When using COPY with more than
  one source file, the destination must be a directory and end with a /``. No source at all (a glob matching nothing): ``no source files
  were specified``.
- ``dest`` is relative to the WORKDIR unless absolute. It is resolved in the target rootfs with
  symlinks followed inside it, never out of it (a hostile ``/target -> ../../`` lands in the
  rootfs's own ``/``). A file goes *into* ``dest`` when ``dest`` ends in ``/`` or is an existing
  directory, else it *is* ``dest``. Inside a copied tree, an existing entry is replaced (a symlink
  is never written through); directories merge.
- Ownership: ``0:0`` unless ``--chown`` (ids resolved by :func:`resolve_chown`), except that
  ``COPY --from`` without ``--chown`` keeps the source's owners (``from_rootfs``). Missing parent
  directories of a copied file are created 0755, owned by ``--chown`` (only the ones created); the
  destination directory of a tree is created 0755 and owned by ``--chown`` when the copy created it,
  its missing parents by root. Modes are kept, mtimes kept to the second, except that a copied
  non-directory loses setuid (and setgid with group execution) unless ``COPY --from`` keeps owners:
  the classic builder chowns after writing and the kernel clears them. ``--chmod`` replaces the
  mode of every file and directory copied. ``security.capability`` (file capabilities) is kept.
- ADD extracts a local *file* source that is a tar (plain, gzip, bzip2, xz or zstd; recognised by
  its content, not its name) into ``dest`` as a directory, through the safe extraction of
  :mod:`dockyard.snapshots` (``.wh.*`` names are ordinary files there; the tar's owners are kept,
  ``--chown`` and ``--chmod`` are not applied, as the classic builder does).
- ADD of an ``http://``/``https://`` URL: ``fetch_url(url)`` (the caller's) downloads it and
  returns the file's path, with the mtime it should get (``Last-Modified``, else the epoch) already
  set on it. The file's name is the URL path's last component (percent-decoded), else the name of
  the returned file (the caller may take it from ``Content-Disposition``; ``__unnamed__`` means
  none). It gets mode 0600 and is never extracted. COPY refuses URLs.
- Heredocs (``COPY <<EOF /dest``): a file named after the heredoc, mode 0644, holding its text.
- With ``excludes`` (the ``.dockerignore`` matcher), an excluded path does not exist for COPY:
  ``file not found in build context or excluded by .dockerignore: stat x: file does not exist``.

The *checksum* (the cache key's content part) is a sha256 over the destination, every entry's
relative path, kind, content digest, mode, owner, symlink or hard-link target and file
capabilities, in a fixed order, never mtimes: touching a file keeps the key.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import re
import shutil
import stat
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from dockyard.build.archives import extract_tar, is_archive
from dockyard.build.globs import contains_wildcards, go_match
from dockyard.build.known_digests import KnownDigests
from dockyard.build.scope import relative_to_scope, resolve_in_scope, scoped_components
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.runtime.users import parse_group, parse_passwd

CAPABILITY_XATTR = "security.capability"
UNNAMED = "__unnamed__"
CHUNK = 1 << 20
MAX_ID_FILE = 64 << 20  # the most of /etc/passwd or /etc/group read

DIR, FILE, SYMLINK, HARDLINK, FIFO, CHAR, BLOCK = "dir", "file", "symlink", "hardlink", "fifo", "char", "block"
TREE, ARCHIVE = "tree", "archive"


@dataclass(frozen=True)
class Entry:
    """One object to write: ``rel`` below the item's target (``""``: the target itself); for a
    file its content comes from ``source`` (a host path) or ``data``; ``link`` is a symlink's
    target or, for a hard link, the ``rel`` of the entry it links to."""

    rel: str
    kind: str
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    source: str | None = None
    data: bytes | None = None
    link: str = ""
    rdev: int = 0
    digest: str = ""
    capability: bytes | None = None


@dataclass(frozen=True)
class CopyItem:
    """What one source becomes: a ``tree`` (``entries`` below ``dest``), a ``file`` (one entry,
    named ``name`` when it goes into a directory) or an ``archive`` (``source`` extracted)."""

    kind: str
    name: str = ""
    entries: tuple[Entry, ...] = ()
    source: str | None = None
    digest: str = ""


@dataclass
class CopyPlan:
    """A planned COPY/ADD: ``dest`` is the absolute image path (a trailing ``/`` kept when the
    destination is a directory by its spelling); ``checksum`` is the cache key part (see the module
    docstring); ``source_hash`` is Docker's history form (``file:<hex>``, ``dir:<hex>`` or
    ``multi:<hex>``, as in ``COPY file:<hex> in /dest``)."""

    command: str
    dest: str
    items: list[CopyItem]
    chown: tuple[int, int] | None
    chmod: int | None
    preserve_ownership: bool
    checksum: str = ""
    source_hash: str = ""

    def apply(self, rootfs: Path) -> None:
        """Write every item into the rootfs at ``rootfs`` (a plain dir or a mounted overlay)."""
        if not os.path.isdir(rootfs):
            raise DockyardError(f"failed to copy files: the rootfs {rootfs} is not a directory")
        writer = _Writer(os.path.abspath(rootfs), self)
        for item in self.items:
            try:
                writer.write(item)
            except DockyardError:
                raise
            except OSError as e:
                raise DockyardError(f"failed to copy files: {_os_error_text(e, writer.root)}") from None


# -- planning ----------------------------------------------------------------------------------


def normalize_dest(workdir: str, dest: str) -> str:
    """``dest`` made absolute against ``workdir`` (moby's ``normalizeDest``), keeping a trailing
    ``/``; ``.`` and a path ending in ``/.`` count as directories (as BuildKit)."""
    dir_form = dest.endswith("/") or dest == "." or dest.endswith("/.")
    if not dest.startswith("/"):
        dest = posixpath.join("/", workdir or "/", dest)
    cleaned = "/" + "/".join(scoped_components(dest))
    if dir_form and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def is_url(source: str) -> bool:
    """Whether a source is a remote URL (moby's ``urlutil.IsURL``)."""
    return source.startswith(("http://", "https://"))


def url_file_name(url: str, content_disposition: str | None = None) -> str:
    """The name ADD gives a download: the URL path's last component, else the ``filename`` of a
    ``Content-Disposition`` header; ``""`` when neither names one."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    if path and not path.endswith("/") and _plain_name(posixpath.basename(path)):
        return posixpath.basename(path)
    if content_disposition:
        msg = Message()
        msg["content-disposition"] = content_disposition
        name = msg.get_param("filename", header="content-disposition")
        if isinstance(name, str) and not name.endswith("/") and _plain_name(posixpath.basename(name)):
            return posixpath.basename(name)
    return ""


def _plain_name(name: str) -> bool:
    """Whether ``name`` can name a file in a directory (not empty, ``.``, ``..``, nor with ``/`` or NUL)."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def parse_chmod(text: str) -> int:
    """A ``--chmod`` value (octal, at most 07777) as an int, with BuildKit's error."""
    if re.fullmatch(r"[0-7]+", text) and int(text, 8) <= 0o7777:
        return int(text, 8)
    raise InvalidParameter(f"invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777")


def plan_copy(source_root: Path, sources: list[str], dest: str, *, workdir: str, is_add: bool,
              chown: tuple[int, int] | None, chmod: int | None, excludes: Callable[[str], bool] | None = None,
              heredocs: dict[str, str] | None = None, fetch_url: Callable[[str], Path] | None = None,
              from_rootfs: bool = False, known_digests: KnownDigests | None = None) -> CopyPlan:
    """Plan a COPY (``is_add`` False) or ADD of ``sources`` (paths, globs, URLs for ADD) and
    ``heredocs`` (name -> text, already expanded) to ``dest``.

    ``source_root`` is the build context, or with ``from_rootfs`` another stage's or image's
    rootfs (COPY --from: errors do not name the build context, and owners are kept unless
    ``chown``). ``excludes(path)`` says whether a context path is excluded by .dockerignore.
    Reads (and hashes) every source now, but for the files whose digest ``known_digests`` holds
    (the context's, hashed as they were unpacked); :meth:`CopyPlan.apply` writes them later.
    """
    command = "ADD" if is_add else "COPY"
    planner = _Planner(os.path.abspath(source_root), command, is_add, chown, chmod, excludes, from_rootfs,
                       known_digests)
    normalized = normalize_dest(workdir, dest)
    dir_form = normalized.endswith("/")
    items: list[CopyItem] = []
    for source in sources:
        if is_url(source):
            items.append(planner.url_item(source, dir_form, fetch_url))
        else:
            items += planner.path_items(source)
    for name, text in (heredocs or {}).items():
        items.append(planner.heredoc_item(name, text))
    if not items:
        raise InvalidParameter(f"{command} failed: no source files were specified")
    if len(items) > 1 and not dest.endswith("/"):  # as written: the classic builder refuses '.'
        raise InvalidParameter(f"When using {command} with more than one source file, the destination must be a "
                               "directory and end with a /")
    plan = CopyPlan(command, normalized, items, chown, chmod, preserve_ownership=from_rootfs and chown is None)
    plan.checksum, plan.source_hash = _checksums(plan)
    return plan


@dataclass
class _Planner:
    root: str
    command: str
    is_add: bool
    chown: tuple[int, int] | None
    chmod: int | None
    excludes: Callable[[str], bool] | None
    from_rootfs: bool
    known_digests: KnownDigests | None = None
    _visible_dirs: dict[str, bool] = field(default_factory=dict)

    def _digest(self, host: str, st: os.stat_result) -> str:
        """The sha256 (hex) of the regular file ``host`` (``st``: its lstat)."""
        if self.known_digests is not None:
            known = self.known_digests.get(host, st)
            if known is not None:
                return known
        return _file_digest(host)

    # -- sources -----------------------------------------------------------------------------

    def path_items(self, source: str) -> list[CopyItem]:
        rel = "/".join(scoped_components(source))
        if contains_wildcards(rel):
            return self._glob(rel)
        return [self._path_item(rel)]

    def _glob(self, pattern: str) -> list[CopyItem]:
        """Every path of the root matching ``pattern``, in walk order (lexical, depth first)."""
        max_depth = pattern.count("/") + 1  # a match has at most as many components as the pattern
        items: list[CopyItem] = []

        def visit(rel: str, host: str, st: os.stat_result) -> bool:
            is_dir = stat.S_ISDIR(st.st_mode)
            if not self._visible(rel, is_dir, host):
                return False
            if go_match(pattern, rel):
                items.append(self._path_item(rel))
            return rel.count("/") + 1 < max_depth

        _walk(self.root, visit)
        return items

    def _path_item(self, rel: str) -> CopyItem:
        host = resolve_in_scope(self.root, rel)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found(rel) from None
        real_rel = relative_to_scope(self.root, host)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not self._visible(rel, is_dir, host) or not self._visible(real_rel, is_dir, host):
            raise self._not_found(rel)
        if is_dir:
            return CopyItem(TREE, entries=tuple(self._tree(host, real_rel)))
        if stat.S_ISSOCK(st.st_mode):
            raise InvalidParameter(f"{self.command} failed: archive/tar: sockets not supported: {rel}")
        name = posixpath.basename(rel)
        if self.is_add and stat.S_ISREG(st.st_mode) and is_archive(host):
            return CopyItem(ARCHIVE, name=name, source=host, digest=self._digest(host, st))
        return CopyItem(FILE, name=name, entries=(self._entry("", host, st),))

    def _not_found(self, rel: str) -> InvalidParameter:
        where = "" if self.from_rootfs else "file not found in build context or excluded by .dockerignore: "
        return InvalidParameter(f"{self.command} failed: {where}stat {rel}: file does not exist")

    def url_item(self, url: str, dir_form: bool, fetch_url: Callable[[str], Path] | None) -> CopyItem:
        if not self.is_add:
            raise InvalidParameter(f"{self.command} failed: source can't be a URL for COPY")
        if fetch_url is None:
            raise DockyardError(f"{self.command} failed: no way to download {url}")
        path = str(fetch_url(url))
        name = url_file_name(url)
        if not name:
            given = os.path.basename(path)
            name = given if _plain_name(given) and given != UNNAMED else ""
        if not name:
            if dir_form:
                raise InvalidParameter(f"{self.command} failed: cannot determine filename for source {url}")
            name = UNNAMED
        st = os.stat(path)
        uid, gid = self.chown or (0, 0)
        mode = self.chmod if self.chmod is not None else 0o600
        entry = Entry("", FILE, mode, uid, gid, _seconds(st.st_mtime_ns), source=path, digest=_file_digest(path))
        return CopyItem(FILE, name=name, entries=(entry,))

    def heredoc_item(self, name: str, text: str) -> CopyItem:
        if not _plain_name(name):
            raise InvalidParameter(f"{self.command} failed: invalid heredoc name {name!r}")
        data = text.encode()
        uid, gid = self.chown or (0, 0)
        mode = self.chmod if self.chmod is not None else 0o644
        entry = Entry("", FILE, mode, uid, gid, _seconds(time.time_ns()), data=data,
                      digest=hashlib.sha256(data).hexdigest())
        return CopyItem(FILE, name=name, entries=(entry,))

    # -- trees and entries ---------------------------------------------------------------------

    def _tree(self, top_host: str, top_rel: str) -> list[Entry]:
        """The entries below directory ``top_host`` (its contents, parents before children).

        An excluded directory is still walked when ``excludes`` may re-include what it holds; it
        becomes an entry (0755, as the client's tar implies it) only once such a path turns up."""
        entries: list[Entry] = []
        links: dict[tuple[int, int], str] = {}
        pending: list[Entry] = []  # excluded directories on the current path, not written yet

        def settle(rel: str, *, emit: bool) -> None:
            """Drop the pending directories that do not hold ``rel``; write the rest if ``emit``."""
            while pending and not rel.startswith(pending[-1].rel + "/"):
                pending.pop()
            if emit:
                entries.extend(pending)
                pending.clear()

        def visit(rel: str, host: str, st: os.stat_result) -> bool:
            ctx_rel = f"{top_rel}/{rel}" if top_rel else rel
            if stat.S_ISSOCK(st.st_mode):
                return False  # the tar Docker copies through has no sockets
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.excludes is not None and self.excludes(ctx_rel):
                if not is_dir:
                    return False
                settle(rel, emit=False)
                uid, gid = self.chown or (0, 0)
                pending.append(Entry(rel, DIR, self.chmod if self.chmod is not None else 0o755, uid, gid,
                                     _seconds(st.st_mtime_ns)))
                return True
            settle(rel, emit=True)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                first = links.setdefault((st.st_dev, st.st_ino), rel)
                if first != rel:
                    entries.append(Entry(rel, HARDLINK, 0, 0, 0, 0, link=first))
                    return False
            entries.append(self._entry(rel, host, st))
            return is_dir

        _walk(top_host, visit)
        return entries

    def _entry(self, rel: str, host: str, st: os.stat_result) -> Entry:
        mode = stat.S_IMODE(st.st_mode)
        if self.chown is not None:
            uid, gid = self.chown
        elif self.from_rootfs:
            uid, gid = st.st_uid, st.st_gid
        else:
            uid, gid = 0, 0
        mtime = _seconds(st.st_mtime_ns)
        fmt = stat.S_IFMT(st.st_mode)
        if fmt == stat.S_IFLNK:
            return Entry(rel, SYMLINK, 0o777, uid, gid, mtime, link=os.readlink(host))
        if self.chmod is not None:
            mode = self.chmod
        elif fmt != stat.S_IFDIR and not (self.from_rootfs and self.chown is None):
            mode = _after_chown(mode)
        if fmt == stat.S_IFDIR:
            return Entry(rel, DIR, mode, uid, gid, mtime)
        if fmt == stat.S_IFREG:
            return Entry(rel, FILE, mode, uid, gid, mtime, source=host, digest=self._digest(host, st),
                         capability=_capability(host))
        kind = {stat.S_IFIFO: FIFO, stat.S_IFCHR: CHAR, stat.S_IFBLK: BLOCK}[fmt]
        return Entry(rel, kind, mode, uid, gid, mtime, rdev=st.st_rdev if kind != FIFO else 0)

    def _visible(self, rel: str, is_dir: bool, host: str) -> bool:
        """Whether ``rel`` is in the context: not excluded, or a directory holding a path that is."""
        excludes = self.excludes
        if excludes is None or not rel or not excludes(rel):
            return True
        if not is_dir:
            return False
        known = self._visible_dirs.get(rel)
        if known is None:

            def visit(child: str, _host: str, _st: os.stat_result) -> bool:
                if not excludes(f"{rel}/{child}"):
                    raise _Found
                return True

            try:
                _walk(host, visit)
                known = False
            except _Found:
                known = True
            self._visible_dirs[rel] = known
        return known


class _Found(Exception):
    """Ends a walk early."""


def _walk(top: str, visit: Callable[[str, str, os.stat_result], bool]) -> None:
    """Visit every path below directory ``top`` in lexical order, a directory before what it holds,
    without recursion (a context may nest deeper than Python's stack); ``visit(rel, host, lstat)``
    says whether to enter a directory."""
    stack: list[tuple[str, str, list[str]]] = [(top, "", _sorted_names(top)[::-1])]
    while stack:
        dir_host, dir_rel, names = stack[-1]
        if not names:
            stack.pop()
            continue
        name = names.pop()
        host = os.path.join(dir_host, name)
        rel = f"{dir_rel}/{name}" if dir_rel else name
        st = os.lstat(host)
        if visit(rel, host, st) and stat.S_ISDIR(st.st_mode):
            stack.append((host, rel, _sorted_names(host)[::-1]))


def _after_chown(mode: int) -> int:
    """The mode a non-directory keeps once chowned: Linux clears setuid, and setgid when group
    execution is allowed, even for root. The classic builder chowns every path it copies after
    writing it (to 0:0 when there is no ``--chown``), so copied files lose those bits there."""
    mode &= ~stat.S_ISUID
    if mode & stat.S_IXGRP:
        mode &= ~stat.S_ISGID
    return mode


def _sorted_names(path: str) -> list[str]:
    return sorted(os.listdir(path))


def _seconds(ns: int) -> int:
    """An mtime truncated to the second, as the tar Docker copies through keeps it."""
    return ns - ns % 1_000_000_000


def _file_digest(path: str) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, CAPABILITY_XATTR, follow_symlinks=False)
    except OSError:
        return None


def _checksums(plan: CopyPlan) -> tuple[str, str]:
    """The plan's checksum and its Docker-style history hash."""
    whole = hashlib.sha256()
    whole.update(f"{plan.command}\0{plan.dest}\0{plan.chown}\0{plan.chmod}\0{plan.preserve_ownership}\n".encode())
    parts: list[str] = []
    for item in plan.items:
        one = hashlib.sha256()
        one.update(f"{item.kind}\0{item.name}\0{item.digest}\n".encode())
        for e in item.entries:
            cap = e.capability.hex() if e.capability is not None else ""
            one.update(f"{e.rel}\0{e.kind}\0{e.mode:o}\0{e.uid}:{e.gid}\0{e.link}\0{e.rdev}\0{e.digest}\0{cap}\n"
                       .encode("utf-8", "surrogateescape"))
        digest = one.hexdigest()
        parts.append(f"{'dir' if item.kind == TREE else 'file'}:{digest}")
        whole.update(digest.encode() + b"\n")
    if len(parts) == 1:
        source_hash = parts[0]
    else:
        source_hash = "multi:" + hashlib.sha256(",".join(parts).encode()).hexdigest()
    return "sha256:" + whole.hexdigest(), source_hash


# -- --chown -----------------------------------------------------------------------------------


def resolve_chown(spec: str, rootfs: Path) -> tuple[int, int]:
    """``--chown=user[:group]`` as ids, names looked up in the rootfs's ``/etc/passwd`` and
    ``/etc/group`` (read inside the rootfs, never through a symlink out of it), as the classic
    builder does: numbers are taken as they are; a lone ``user`` is also the group's name."""
    try:
        parts = spec.split(":")
        if len(parts) > 2:
            raise InvalidParameter("invalid chown string format: " + spec)
        user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
        root = os.path.abspath(rootfs)
        uid = _lookup_id(user, root, "passwd", "uid for user", "no such user")
        gid = _lookup_id(group, root, "group", "gid for group", "no such group")
    except InvalidParameter as e:
        raise InvalidParameter(f"unable to convert uid/gid chown string to host mapping: {e.message}") from None
    return uid, gid


def _lookup_id(name: str, root: str, file: str, what: str, missing: str) -> int:
    if re.fullmatch(r"[+-]?[0-9]+", name):
        number = int(name)
        if not 0 <= number <= (1 << 32) - 2:
            raise InvalidParameter(f"can't find {what} {name}: id out of range")
        return number
    text = _read_id_file(root, file)
    if text is None:
        raise InvalidParameter(f"can't find {what} {name}: open /etc/{file}: no such file or directory")
    if file == "passwd":
        ids = [u.uid for u in parse_passwd(text) if u.name == name]
    else:
        ids = [g.gid for g in parse_group(text) if g.name == name]
    if not ids:
        raise InvalidParameter(f"can't find {what} {name}: {missing}: {name}")
    return ids[0]


def _read_id_file(root: str, file: str) -> str | None:
    """``/etc/<file>`` of the rootfs, or None; a FIFO or device there is not read (no hang)."""
    path = resolve_in_scope(root, f"etc/{file}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_ID_FILE)
    finally:
        os.close(fd)
    return data.decode(errors="replace")


# -- writing -----------------------------------------------------------------------------------


def _os_error_text(err: OSError, root: str) -> str:
    """An OSError as Go words it, host paths shown inside the rootfs."""
    name = err.filename if isinstance(err.filename, str) else ""
    if name.startswith(root):
        name = "/" + name[len(root):].lstrip("/")
    return f"{name}: {(err.strerror or str(err)).lower()}" if name else (err.strerror or str(err)).lower()


class _Writer:
    """Writes a plan's items into one rootfs (see the module docstring for the rules)."""

    def __init__(self, root: str, plan: CopyPlan) -> None:
        self.root = root
        self.plan = plan
        self.privileged = os.geteuid() == 0

    def write(self, item: CopyItem) -> None:
        base = resolve_in_scope(self.root, self.plan.dest)
        if item.kind == TREE:
            created = self._make_dirs(base, new_owner=(0, 0), purpose="failed to copy directory")
            if created and self.plan.chown is not None:
                self._chown(base, *self.plan.chown)
            self._write_tree(base, item.entries)
        elif item.kind == ARCHIVE:
            self._make_dirs(base, new_owner=(0, 0), purpose="failed to extract archive")
            assert item.source is not None
            with open(item.source, "rb") as f:
                extract_tar(f, Path(base), privileged=self.privileged)
        else:
            if not _plain_name(item.name):
                raise DockyardError(f"failed to copy files: invalid file name {item.name!r}")
            into_dir = self.plan.dest.endswith("/") or os.path.isdir(base)
            target = os.path.join(base, item.name) if into_dir else base
            self._make_dirs(os.path.dirname(target), new_owner=self.plan.chown or (0, 0),
                            purpose="failed to create new directory")
            entry = item.entries[0]
            self._clear(target, entry.kind)
            self._write_entry(target, entry, base)

    def _make_dirs(self, path: str, *, new_owner: tuple[int, int], purpose: str) -> bool:
        """Create the missing directories of ``path`` (inside the rootfs, no symlinks on the way:
        ``path`` was resolved in scope), 0755 and owned by ``new_owner``; True if ``path`` itself
        was created."""
        rel = relative_to_scope(self.root, path)
        current = self.root
        created = False
        for comp in rel.split("/") if rel else []:
            current = os.path.join(current, comp)
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                os.chmod(current, 0o755)  # whatever the umask
                self._chown(current, *new_owner)
                created = True
                continue
            created = False
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                shown = "/" + relative_to_scope(self.root, current)
                raise DockyardError(f"failed to copy files: {purpose}: mkdir {shown}: not a directory")
        return created

    def _write_tree(self, base: str, entries: tuple[Entry, ...]) -> None:
        dirs: list[tuple[str, Entry]] = []
        for entry in entries:
            path = os.path.join(base, entry.rel)
            self._clear(path, entry.kind)
            self._write_entry(path, entry, base)
            if entry.kind == DIR:
                dirs.append((path, entry))
        for path, entry in sorted(dirs, key=lambda d: d[1].rel.count("/"), reverse=True):
            self._finish_dir(path, entry)

    def _clear(self, path: str, kind: str) -> None:
        """Remove what is at ``path`` unless a directory meets a directory (they merge)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if kind != DIR:
                shutil.rmtree(path)
        else:
            os.unlink(path)

    def _write_entry(self, path: str, entry: Entry, base: str) -> None:
        """Write one entry at ``path`` (nothing there); ``base`` is its tree's directory."""
        if entry.kind == DIR:
            if not os.path.lexists(path):
                os.mkdir(path, 0o700)
            self._chown(path, entry.uid, entry.gid)
            return  # mode and mtime once its children are written
        if entry.kind == FILE:
            self._write_file(path, entry)
            return
        if entry.kind == SYMLINK:
            os.symlink(entry.link, path)
            self._chown(path, entry.uid, entry.gid)
            os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
            return
        if entry.kind == HARDLINK:
            os.link(os.path.join(base, entry.link), path, follow_symlinks=False)
            return
        if entry.kind == FIFO:
            os.mkfifo(path, 0o600)
        else:
            if not self.privileged:
                return  # as Docker without the privilege to mknod: the node is skipped
            kind = stat.S_IFCHR if entry.kind == CHAR else stat.S_IFBLK
            os.mknod(path, kind | 0o600, entry.rdev)
        self._chown(path, entry.uid, entry.gid)
        os.chmod(path, entry.mode, follow_symlinks=False)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)

    def _write_file(self, path: str, entry: Entry) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if entry.data is not None:
                _write_all(fd, entry.data)
            elif entry.source is not None:
                src = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    _copy_fd(src, fd)
                finally:
                    os.close(src)
            if self.privileged:
                os.fchown(fd, entry.uid, entry.gid)  # before chmod: chown clears setuid/setgid
            os.fchmod(fd, entry.mode)
            if entry.capability is not None:
                try:
                    os.setxattr(fd, CAPABILITY_XATTR, entry.capability)
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EINVAL):
                        raise
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        finally:
            os.close(fd)

    def _finish_dir(self, path: str, entry: Entry) -> None:
        os.chmod(path, entry.mode, follow_symlinks=False)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)

    def _chown(self, path: str, uid: int, gid: int) -> None:
        if self.privileged:
            os.lchown(path, uid, gid)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _copy_fd(src: int, dst: int) -> None:
    size = os.fstat(src).st_size
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dst, src, offset, min(CHUNK * 64, size - offset))
            if sent == 0:
                break
            offset += sent
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV):
            raise
    os.lseek(src, offset, os.SEEK_SET)
    while chunk := os.read(src, CHUNK):
        _write_all(dst, chunk)
