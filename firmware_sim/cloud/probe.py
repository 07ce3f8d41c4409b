"""What a library file is: MIME type, media kind and, where the header says, size and duration.

Pure parsers over a file's first bytes (PNG IHDR, JPEG SOFn, WAV fmt/data, ISO-BMFF
mvhd/tkhd); `probe_file` is the one blocking helper, run in a thread with the hashing.
"""

from __future__ import annotations

import mimetypes
import struct
from dataclasses import dataclass
from pathlib import Path

_HEAD_BYTES = 256 * 1024  # enough for a faststart MP4's moov box and any image header

_EXTRA_TYPES = {
    ".mkv": "video/x-matroska", ".webm": "video/webm", ".m4v": "video/mp4", ".mp4": "video/mp4",
    ".mov": "video/quicktime", ".flac": "audio/flac", ".m4a": "audio/mp4", ".webp": "image/webp",
    ".heic": "image/heic", ".wav": "audio/wav", ".md": "text/markdown",
}


@dataclass(frozen=True)
class MediaInfo:
    """The `media` object of a file entry; None where unknown."""

    kind: str  # video | image | document | audio
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "width": self.width, "height": self.height,
                "duration_ms": self.duration_ms}


def media_type(name: str) -> str:
    """MIME type from the file name (application/octet-stream when unknown)."""
    suffix = Path(name).suffix.lower()
    if suffix in _EXTRA_TYPES:
        return _EXTRA_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def kind_of(mime: str) -> str:
    """Media kind from a MIME type; anything not video, image or audio is a document."""
    top = mime.split("/", 1)[0]
    return top if top in ("video", "image", "audio") else "document"


def png_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk (PNG spec §11.2.2)."""
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR" or len(head) < 24:
        return None
    return struct.unpack(">II", head[16:24])


def jpeg_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from the first SOFn marker of a JPEG (ITU T.81 §B.2.2)."""
    if head[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def wav_duration_ms(head: bytes) -> int | None:
    """Duration of a PCM WAV from its fmt byte rate and data chunk size."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    i, byte_rate = 12, None
    while i + 8 <= len(head):
        cid, size = head[i:i + 4], struct.unpack("<I", head[i + 4:i + 8])[0]
        if cid == b"fmt " and i + 20 <= len(head):
            byte_rate = struct.unpack("<I", head[i + 16:i + 20])[0]
        elif cid == b"data":
            return (size * 1000) // byte_rate if byte_rate else None
        i += 8 + size + (size & 1)
    return None


def _boxes(data: bytes, start: int, end: int):
    """Iterate (type, payload_start, payload_end) of ISO-BMFF boxes (ISO/IEC 14496-12 §4.2)."""
    i = start
    while i + 8 <= end:
        size, btype = struct.unpack(">I4s", data[i:i + 8])
        header = 8
        if size == 1 and i + 16 <= end:
            size = struct.unpack(">Q", data[i + 8:i + 16])[0]
            header = 16
        elif size == 0:
            size = end - i
        if size < header:
            return
        yield btype, i + header, min(i + size, end)
        i += size


def mp4_info(head: bytes) -> tuple[int | None, int | None, int | None]:
    """(width, height, duration_ms) from an MP4's moov/mvhd and the first sized tkhd."""
    width = height = duration = None
    for btype, s, e in _boxes(head, 0, len(head)):
        if btype != b"moov":
            continue
        for ctype, cs, ce in _boxes(head, s, e):
            if ctype == b"mvhd" and ce - cs >= 20:
                if head[cs] == 1 and ce - cs >= 32:
                    timescale, dur = struct.unpack(">IQ", head[cs + 20:cs + 32])
                else:
                    timescale, dur = struct.unpack(">II", head[cs + 12:cs + 20])
                duration = (dur * 1000) // timescale if timescale else None
            elif ctype == b"trak" and width is None:
                for ttype, ts, te in _boxes(head, cs, ce):
                    if ttype == b"tkhd" and te - ts >= 84:
                        off = ts + (92 if head[ts] == 1 else 80) - 4
                        w, h = struct.unpack(">II", head[off:off + 8])
                        if w and h:
                            width, height = w >> 16, h >> 16
    return width, height, duration


def probe_head(name: str, head: bytes) -> tuple[str, MediaInfo]:
    """(media_type, MediaInfo) from a file name and its first bytes; never raises on garbage."""
    mime = media_type(name)
    kind = kind_of(mime)
    try:
        if kind == "image":
            size = png_size(head) or jpeg_size(head)
            if size:
                return mime, MediaInfo(kind, size[0], size[1])
        elif kind == "video":
            w, h, d = mp4_info(head)
            return mime, MediaInfo(kind, w, h, d)
        elif kind == "audio":
            return mime, MediaInfo(kind, duration_ms=wav_duration_ms(head))
    except (struct.error, IndexError, ValueError):
        pass  # a truncated or odd header just leaves the fields unknown
    return mime, MediaInfo(kind)


_MAX_MOOV = 16 * 1024 * 1024


def _read_moov(f, file_size: int) -> bytes | None:
    """Find the top-level moov box by seeking over the others (it may sit after mdat)."""
    pos = 0
    while pos + 8 <= file_size:
        f.seek(pos)
        header = f.read(16)
        if len(header) < 8:
            return None
        size, btype = struct.unpack(">I4s", header[:8])
        if size == 1 and len(header) == 16:
            size = struct.unpack(">Q", header[8:16])[0]
        elif size == 0:
            size = file_size - pos
        if size < 8:
            return None
        if btype == b"moov":
            if size > _MAX_MOOV:
                return None
            f.seek(pos)
            return f.read(size)
        pos += size
    return None


def probe_file(path: Path) -> tuple[str, MediaInfo]:
    """Probe a file on disk. Blocking: run it in a thread."""
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
        if kind_of(media_type(path.name)) == "video":
            try:
                moov = _read_moov(f, path.stat().st_size)
            except (OSError, struct.error):
                moov = None
            if moov:
                head = moov
    return probe_head(path.name, head)
