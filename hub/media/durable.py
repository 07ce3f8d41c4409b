"""Making files survive a crash: fsync a file, fsync a directory, replace a small file atomically.

A rename is durable only once its directory is fsynced; a file's bytes only once the file is.
Every "write, fsync, rename, fsync the folder" in the media code goes through here. Blocking.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a directory, so the renames and creations in it survive a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """fsync a file's bytes (it may be open elsewhere for writing)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes, mode: int = 0o600, *, sync: bool = True) -> None:
    """Replace `path` with `data` atomically: temp file, fsync, rename, fsync the folder.

    `sync=False` keeps the atomic rename but skips both fsyncs (for a hint that may be lost).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync:
        fsync_dir(path.parent)


def rename_into(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`, creating `dst`'s folder if it is new (the caller fsyncs folders)."""
    try:
        os.replace(src, dst)
    except FileNotFoundError:
        if not os.path.exists(src):
            raise
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
