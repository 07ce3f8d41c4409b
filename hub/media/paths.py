"""Map cloud paths to safe local paths inside the library directory.

Rules (the cloud is untrusted input):
- a path is split on "/"; empty and "." components are dropped; any ".." component, a
  backslash, a NUL or any other control character (Unicode category C*), or a component longer
  than 255 UTF-8 bytes rejects the whole path (`UnsafePath`); nothing is left to be absolute
  because the leading "/"s are just empty components;
- the top-level name ".partial" is reserved for in-flight downloads and is rejected;
- names are compared after NFC normalisation and case folding, so the library stays valid
  on case-insensitive filesystems (a USB stick, a Mac share). When a second file collides
  with a name already taken (two cloud files "/A.jpg" and "/a.jpg", or a local file the hub
  did not write), it gets a disambiguated local name `<stem>~<cloud id>.<ext>`: deterministic,
  stable across runs (the chosen name is stored), and never overwrites anything. A file
  whose parent directory collides with a file (or vice versa) cannot be disambiguated that
  way and is rejected with `UnsafePath`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

RESERVED_TOP = frozenset({".partial"})
_ID_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class UnsafePath(ValueError):
    """A cloud path the library refuses to write."""


def _bad_char(ch: str) -> bool:
    return unicodedata.category(ch).startswith("C") or ch == "\\"


def normalise(cloud_path: str) -> PurePosixPath:
    """The relative local path for a cloud path, or UnsafePath saying why not."""
    if not isinstance(cloud_path, str):
        raise UnsafePath("path is not a string")
    parts: list[str] = []
    for part in cloud_path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafePath(f"'..' in {cloud_path!r}")
        if any(_bad_char(c) for c in part):
            raise UnsafePath(f"control character or backslash in {cloud_path!r}")
        if len(part.encode("utf-8", "surrogatepass")) > 255:
            raise UnsafePath(f"name longer than 255 bytes in {cloud_path!r}")
        try:
            part.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UnsafePath(f"not valid UTF-8: {cloud_path!r}") from exc
        parts.append(unicodedata.normalize("NFC", part))
    if not parts:
        raise UnsafePath(f"empty path {cloud_path!r}")
    if parts[0] in RESERVED_TOP:
        raise UnsafePath(f"reserved name {parts[0]!r}")
    rel = PurePosixPath(*parts)
    if rel.is_absolute() or ".." in rel.parts:  # belt and braces
        raise UnsafePath(f"escapes the library: {cloud_path!r}")
    return rel


def fold(rel: PurePosixPath | str) -> str:
    """The collision key of a relative path: NFC then case folding, component-wise."""
    return "/".join(unicodedata.normalize("NFC", p).casefold() for p in PurePosixPath(rel).parts)


def disambiguated(rel: PurePosixPath, cloud_id: str) -> PurePosixPath:
    """`dir/stem~<id>.ext`: the name a colliding file gets."""
    tag = _ID_SAFE.sub("_", cloud_id)[:40] or "x"
    name = rel.name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    # keep the name inside the 255-byte limit
    new = f"{stem[: 200]}~{tag}" + (f".{ext[:40]}" if ext else "")
    return rel.with_name(new)


class NameTable:
    """The local names taken so far (files and their parent directories), by collision key."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._files: dict[str, str] = {}
        self._dirs: dict[str, int] = {}
        for rel in taken:
            self.claim(PurePosixPath(rel))

    def _ancestors(self, key: str) -> list[str]:
        parts = key.split("/")
        return ["/".join(parts[:i]) for i in range(1, len(parts))]

    def free(self, rel: PurePosixPath) -> bool:
        key = fold(rel)
        return key not in self._files and key not in self._dirs and self.parents_ok(rel)

    def parents_ok(self, rel: PurePosixPath) -> bool:
        return not any(a in self._files for a in self._ancestors(fold(rel)))

    def claim(self, rel: PurePosixPath) -> None:
        key = fold(rel)
        self._files[key] = str(rel)
        for a in self._ancestors(key):
            self._dirs[a] = self._dirs.get(a, 0) + 1

    def release(self, rel: PurePosixPath | str) -> None:
        key = fold(rel)
        if self._files.pop(key, None) is None:
            return
        for a in self._ancestors(key):
            n = self._dirs.get(a, 0) - 1
            if n <= 0:
                self._dirs.pop(a, None)
            else:
                self._dirs[a] = n

    def __contains__(self, rel: object) -> bool:
        return isinstance(rel, (str, PurePosixPath)) and fold(rel) in self._files


def assign(
    cloud_path: str,
    cloud_id: str,
    names: NameTable,
    exists: Callable[[PurePosixPath], bool] = lambda _p: False,
) -> PurePosixPath:
    """Choose and claim the local path for a cloud file; UnsafePath if it cannot be placed.

    `exists(rel)` reports a file already on disk that the table doesn't know (never overwritten).
    """
    rel = normalise(cloud_path)
    if not names.parents_ok(rel):
        raise UnsafePath(f"a parent of {cloud_path!r} is already a file")
    for candidate in (rel, disambiguated(rel, cloud_id)):
        if names.free(candidate) and not exists(candidate):
            names.claim(candidate)
            return candidate
    raise UnsafePath(f"{cloud_path!r} collides with an existing name")
