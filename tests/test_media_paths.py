"""Cloud paths never write outside the library and never overwrite another file."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.media.contenthash import StreamHasher, content_hash, hash_file
from hub.media.paths import NameTable, UnsafePath, assign, fold, normalise


@pytest.mark.parametrize(
    "bad",
    ["/../etc/passwd", "/a/../../b", "..", "/a/\x00b", "/a\nb.mp4", "/tab\there", "/x\x7f", "/a\\..\\b",
     "", "/", "//", "/./.", "/.partial/x", "/" + "a" * 256, "/bidi\u202eevil"],
)
def test_unsafe_paths_are_rejected(bad: str) -> None:
    with pytest.raises(UnsafePath):
        normalise(bad)


@pytest.mark.parametrize(
    ("cloud", "local"),
    [("/videos/trip.mp4", "videos/trip.mp4"), ("//etc//passwd", "etc/passwd"), ("/a/./b.jpg", "a/b.jpg"),
     ("no-slash.txt", "no-slash.txt"), ("/Ünïcödé/фото.jpg", "Ünïcödé/фото.jpg"), ("/..hidden/x", "..hidden/x")],
)
def test_safe_paths_map_inside_the_library(cloud: str, local: str) -> None:
    assert str(normalise(cloud)) == local


def test_case_collision_gets_a_disambiguated_name() -> None:
    names = NameTable()
    first = assign("/A.jpg", "id1", names)
    second = assign("/a.jpg", "id2", names)
    assert str(first) == "A.jpg"
    assert str(second) == "a~id2.jpg"
    # a third spelling, and unicode normalisation forms, collide too
    assert str(assign("/a.JPG", "id3", names)) == "a~id3.JPG"
    assert str(assign("/e\u0301.png", "id4", names)) == "\u00e9.png"
    assert str(assign("/\u00c9.png", "id5", names)) == "\u00c9~id5.png"


def test_file_under_a_file_is_rejected() -> None:
    names = NameTable(["movies"])
    with pytest.raises(UnsafePath):
        assign("/Movies/x.mp4", "id9", names)


def test_a_stray_local_file_is_never_overwritten() -> None:
    names = NameTable()
    rel = assign("/notes.txt", "idx", names, exists=lambda r: str(r) == "notes.txt")
    assert str(rel) == "notes~idx.txt"


cloud_paths = st.lists(
    st.one_of(
        st.sampled_from(["..", ".", "", "A", "a", "b.JPG", "b.jpg", ".partial", "x\x00", "\\", "é", "e\u0301"]),
        st.text(min_size=0, max_size=12),
    ),
    min_size=0,
    max_size=5,
).map(lambda parts: "/".join(parts))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.one_of(cloud_paths, st.text(max_size=30)), st.text(min_size=1, max_size=8)), max_size=12))
def test_mapper_never_escapes_or_collides(tmp_path_factory: pytest.TempPathFactory, files: list[tuple[str, str]]) -> None:
    root = Path("/srv/library")
    names = NameTable()
    placed: dict[str, str] = {}
    for i, (cloud, cid) in enumerate(files):
        try:
            rel = assign(cloud, f"{cid}{i}", names)
        except UnsafePath:
            continue
        assert not rel.is_absolute()
        full = Path(os.path.normpath(root / rel))
        assert root in full.parents  # inside the library
        assert rel.parts[0] != ".partial"
        assert all(not any(ord(c) < 32 or c == "\x7f" for c in p) for p in rel.parts)
        key = fold(rel)
        assert key not in placed, f"{rel} collides with {placed.get(key)}"
        # no file sits where another needs a directory
        parts = key.split("/")
        assert not any("/".join(parts[:k]) in placed for k in range(1, len(parts)))
        assert not any(other.startswith(key + "/") for other in placed)
        placed[key] = str(rel)


def test_content_hash_matches_the_definition() -> None:
    assert content_hash(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    import hashlib

    data = bytes(range(256)) * 40000  # ~10 MB: 3 blocks
    blocks = [hashlib.sha256(data[i : i + (4 << 20)]).digest() for i in range(0, len(data), 4 << 20)]
    assert content_hash(data) == hashlib.sha256(b"".join(blocks)).hexdigest()
    h = StreamHasher()
    for i in range(0, len(data), 777_777):  # chunking doesn't matter
        h.update(data[i : i + 777_777])
    assert h.result().content_hash == content_hash(data)
    assert h.result().sha256 == hashlib.sha256(data).hexdigest()


def test_content_hash_agrees_with_rclone(tmp_path: Path) -> None:
    import subprocess

    sizes = {"empty": 0, "small": 123, "block": 4 << 20, "more": (4 << 20) * 2 + 5}
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(size))
    out = subprocess.run(["rclone", "hashsum", "dropbox", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    theirs = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.splitlines()}
    for name in sizes:
        assert hash_file(tmp_path / name).content_hash == theirs[name], name


def test_pure_posix_only() -> None:
    assert isinstance(normalise("/a/b"), PurePosixPath)
