"""The demo library and the cloud serving it, checked by independent tools (ffprobe, rclone)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from aiohttp import ClientSession
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.cloud import media_seed
from firmware_sim.cloud.probe import probe_head
from firmware_sim.cloud.testing import running_cloud


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seeded") / "library"
    made = media_seed.seed(root)
    assert len(made) == 8
    return root


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", str(path)], check=True, capture_output=True,
                         text=True, timeout=30).stdout
    return json.loads(out)


def test_seed_makes_the_folders_and_is_idempotent(seeded: Path):
    assert sorted(p.name for p in seeded.iterdir()) == ["Documents", "Films", "Music", "Photos"]
    assert media_seed.seed(seeded) == []  # nothing is overwritten
    assert not media_seed.is_empty(seeded)
    assert not list(seeded.rglob(".*"))  # no temp files left behind


def test_png_is_valid(seeded: Path):
    data = (seeded / "Photos" / "Sunset over the hills.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length:pos + 12 + length], "big")
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == 400 * (1 + 640 * 3)
    info = ffprobe(seeded / "Photos" / "Sunset over the hills.png")["streams"][0]
    assert (info["width"], info["height"]) == (640, 400)


def test_pdf_xref_points_at_its_objects(seeded: Path):
    data = (seeded / "Documents" / "Scanned letter.pdf").read_bytes()
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\n(\d+)", data).group(1))
    assert data[startxref:startxref + 4] == b"xref"
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n ", data)]
    for number, off in enumerate(offsets, start=1):
        assert data[off:].startswith(b"%d 0 obj" % number)


async def test_served_media_metadata_matches_ffprobe(seeded: Path):
    async with running_cloud(seeded) as cloud, ClientSession() as s:
        token = await cloud.token(s)
        async with s.get(f"{cloud.url}/v1/changes", headers={
                "Authorization": f"Bearer {token['access_token']}"}) as r:
            entries = {e["path"]: e for e in (await r.json())["entries"]}
    assert {p for p, e in entries.items() if e["tag"] == "folder"} == {
        "/Films", "/Photos", "/Documents", "/Music"}
    kinds = {p: e["media"]["kind"] for p, e in entries.items() if e["tag"] == "file"}
    assert kinds == {
        "/Films/Holiday 2025.mp4": "video", "/Films/Fractal zoom.mp4": "video",
        "/Photos/Sunset over the hills.png": "image", "/Photos/Mandelbrot.png": "image",
        "/Photos/Sunset (phone).jpg": "image", "/Documents/Scanned letter.pdf": "document",
        "/Documents/Warranty - projector.pdf": "document", "/Music/Chime.wav": "audio"}
    for path, entry in entries.items():
        if entry["tag"] != "file" or entry["media"]["kind"] == "document":
            continue
        probe = ffprobe(seeded / path.lstrip("/"))
        video = next((st for st in probe["streams"] if st["codec_type"] == "video"), None)
        media = entry["media"]
        if video is not None:
            assert (media["width"], media["height"]) == (video["width"], video["height"]), path
        if media["kind"] in ("video", "audio"):
            seconds = float(probe["format"]["duration"])
            assert abs(media["duration_ms"] - seconds * 1000) < 50, path


async def test_rclone_check_agrees_with_the_manifest(seeded: Path, tmp_path: Path):
    """rclone's own Dropbox hash code verifies our manifest and our downloads."""
    mirror = tmp_path / "mirror"
    async with running_cloud(seeded) as cloud, ClientSession() as s:
        token = await cloud.token(s)
        auth = {"Authorization": f"Bearer {token['access_token']}"}
        async with s.get(f"{cloud.url}/v1/manifest", headers=auth) as r:
            manifest = await r.text()
        async with s.get(f"{cloud.url}/v1/changes", headers=auth) as r:
            entries = (await r.json())["entries"]
        for e in entries:
            if e["tag"] == "file":
                async with s.get(f"{cloud.url}/v1/files/{e['id']}/content", headers=auth) as r:
                    dest = mirror / e["path"].lstrip("/")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(await r.read())
    (tmp_path / "manifest.txt").write_text(manifest)

    def check(directory: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rclone", "check", "--checkfile", "dropbox",
                               str(tmp_path / "manifest.txt"), str(directory), "--combined", "-"],
                              capture_output=True, text=True, timeout=60)

    for directory in (seeded, mirror):
        result = check(directory)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("= ") == 8
    # and rclone does notice a single flipped byte
    victim = mirror / "Photos" / "Mandelbrot.png"
    data = bytearray(victim.read_bytes())
    data[100] ^= 1
    victim.write_bytes(bytes(data))
    result = check(mirror)
    assert result.returncode == 1 and "* Photos/Mandelbrot.png" in result.stdout


async def test_cli_serves_a_seeded_library_until_sigterm(tmp_path: Path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.cli", "cloud", "--library", str(tmp_path / "lib"),
        "--port", "0", "--seed-demo", "--auto-approve",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        lines = []
        while not any("operator cloud on" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, (await proc.stderr.read()).decode()
            lines.append(line.decode())
        assert any("seeded 8 demo files" in line for line in lines)
        url = re.search(r"operator cloud on (http://127\.0\.0\.1:\d+)/", lines[-1]).group(1)
        async with ClientSession() as s:
            async with s.post(f"{url}/oauth/device/code", data={"client_id": "cli"}) as r:
                grant = await r.json()
            async with s.post(f"{url}/oauth/token", data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "device_code": grant["device_code"], "client_id": "cli"}) as r:
                token = await r.json()
            async with s.get(f"{url}/v1/changes", headers={
                    "Authorization": f"Bearer {token['access_token']}"}) as r:
                files = [e for e in (await r.json())["entries"] if e["tag"] == "file"]
        assert len(files) == 8
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0


def test_tools_are_present():
    """The seed and these tests need ffmpeg/ffprobe and rclone (installed by the Makefile)."""
    assert shutil.which("ffmpeg") and shutil.which("ffprobe") and shutil.which("rclone")


@given(name=st.sampled_from(["a.png", "a.jpg", "a.mp4", "a.wav", "a.pdf", "a", "a.mkv"]),
       head=st.binary(max_size=300) | st.sampled_from([
           b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", b"\xff\xd8\xff\xc0\0\x01", b"RIFF\0\0\0\0WAVEdata",
           b"\0\0\0\x08moov\0\0\0\x01mvhd" + b"\xff" * 20, b"\0\0\0\0moov"]))
def test_probing_garbage_never_raises(name, head):
    mime, info = probe_head(name, head)
    assert info.kind in ("video", "image", "audio", "document") and "/" in mime
