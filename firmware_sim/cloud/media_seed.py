"""A demo library of real, viewable media made locally (no network).

- images: PNG drawn in pure Python (zlib writer, PNG spec §11–12); JPEG too when ffmpeg is on
  PATH (converted from a PNG);
- a PDF "scanned document" written by hand (PDF 1.4 with a correct xref table);
- a WAV chime (stdlib `wave`);
- short H.264/AAC MP4 films made by ffmpeg's synthetic sources, when ffmpeg is on PATH
  (skipped, with a log line, when it is not).
Folders: /Films, /Photos, /Documents, /Music.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import struct
import subprocess
import wave
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

FFMPEG_TIMEOUT = 120  # seconds per ffmpeg run; the clips are a few seconds long


# -- PNG ---------------------------------------------------------------------------------
def png_bytes(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG from raw RGB rows (filter type 0 on every scanline)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def sunset_png(width: int = 640, height: int = 400) -> bytes:
    """A sky gradient, a sun and two mountain ridges."""
    rows = []
    sun_x, sun_y, sun_r = width * 0.68, height * 0.52, height * 0.14
    for y in range(height):
        t = y / height
        sky = (int(40 + 215 * t), int(30 + 120 * t), int(120 - 60 * t))
        row = bytearray()
        for x in range(width):
            u = x / width
            r1 = height * (0.60 + 0.07 * math.sin(u * 7.0) + 0.03 * math.sin(u * 23))
            r2 = height * (0.75 + 0.05 * math.sin(x / width * 4.0 + 1.3))
            if y > r2:
                row += bytes((25, 40, 35))
            elif y > r1:
                row += bytes((60, 55, 90))
            elif (x - sun_x) ** 2 + (y - sun_y) ** 2 < sun_r ** 2:
                row += bytes((255, 220, 120))
            else:
                row += bytes(sky)
        rows.append(bytes(row))
    return png_bytes(width, height, rows)


def fractal_png(width: int = 480, height: int = 320, iterations: int = 40) -> bytes:
    """A coloured Mandelbrot set."""
    rows = []
    for y in range(height):
        ci = (y / height - 0.5) * 2.4
        row = bytearray()
        for x in range(width):
            cr = (x / width) * 3.5 - 2.5
            zr = zi = 0.0
            n = 0
            while n < iterations and zr * zr + zi * zi < 4.0:
                zr, zi = zr * zr - zi * zi + cr, 2 * zr * zi + ci
                n += 1
            if n == iterations:
                row += b"\x08\x08\x20"
            else:
                v = n / iterations
                row += bytes((int(255 * v), int(255 * v ** 0.5), int(120 + 135 * (1 - v))))
        rows.append(bytes(row))
    return png_bytes(width, height, rows)


# -- PDF ---------------------------------------------------------------------------------
def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def scanned_pdf(title: str, lines: list[str]) -> bytes:
    """A one-page A4 PDF that looks like a scanned letter (grey paper, typed text)."""
    ops = ["0.93 0.92 0.88 rg 0 0 595 842 re f", "0 0 0 rg", "BT /F1 20 Tf 60 770 Td",
           f"({_pdf_text(title)}) Tj", "/F1 11 Tf 0 -36 Td 16 TL"]
    ops += [f"({_pdf_text(line)}) '" for line in lines]
    ops += ["ET", "0.6 0.6 0.6 RG 1 w 60 90 m 535 90 l S"]
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


# -- audio -------------------------------------------------------------------------------
def chime_wav(path: Path, seconds: float = 2.0, rate: int = 22050) -> None:
    """A two-tone chime, 16-bit mono PCM."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        t = i / rate
        freq = 660.0 if t < seconds / 2 else 880.0
        envelope = math.exp(-3.0 * (t % (seconds / 2)))
        frames += struct.pack("<h", int(12000 * envelope * math.sin(2 * math.pi * freq * t)))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))


# -- ffmpeg-made media -------------------------------------------------------------------
def _ffmpeg(args: list[str]) -> bool:
    exe = shutil.which("ffmpeg")
    if exe is None:
        return False
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    try:
        subprocess.run(cmd, check=True, timeout=FFMPEG_TIMEOUT, stdin=subprocess.DEVNULL,
                       capture_output=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log.warning("ffmpeg failed (%s): %s", " ".join(args[-1:]), exc)
        return False
    return True


def film(path: Path, source: str, seconds: int, tone: int) -> bool:
    """A short H.264/AAC MP4 (moov first) from an ffmpeg synthetic video source."""
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    ok = _ffmpeg(["-f", "lavfi", "-i", source,
                  "-f", "lavfi", "-i", f"sine=frequency={tone}", "-t", str(seconds),
                  "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                  "-c:a", "aac", "-b:a", "64k", "-shortest", "-movflags", "+faststart",
                  str(tmp)])
    if ok:
        os.replace(tmp, path)
    else:
        tmp.unlink(missing_ok=True)
    return ok


def jpeg_from_png(png: bytes, path: Path) -> bool:
    """Convert PNG bytes to a JPEG with ffmpeg."""
    src = path.with_name(f".{path.stem}.src.png")
    tmp = path.with_name(f".{path.name}.tmp.jpg")
    src.write_bytes(png)
    try:
        ok = _ffmpeg(["-i", str(src), "-q:v", "3", str(tmp)])
        if ok:
            os.replace(tmp, path)
        return ok
    finally:
        src.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def seed(root: Path, *, videos: bool = True) -> list[Path]:
    """Fill `root` with the demo library; files already there are kept. Returns what it made."""
    root = Path(root)
    made: list[Path] = []
    for folder in ("Films", "Photos", "Documents", "Music"):
        (root / folder).mkdir(parents=True, exist_ok=True)

    def write(rel: str, data: bytes) -> None:
        path = root / rel
        if not path.exists():
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            made.append(path)

    sunset = sunset_png()
    write("Photos/Sunset over the hills.png", sunset)
    write("Photos/Mandelbrot.png", fractal_png())
    jpeg = root / "Photos/Sunset (phone).jpg"
    if not jpeg.exists():
        if jpeg_from_png(sunset, jpeg):
            made.append(jpeg)
        else:
            log.info("ffmpeg not found: no JPEG in the demo library")
    write("Documents/Scanned letter.pdf", scanned_pdf("Letter from the council", [
        "Dear resident,", "",
        "the recycling collection moves to Thursdays from next month.",
        "Please put your bins out before 7 am.", "", "Kind regards,", "The council"]))
    write("Documents/Warranty - projector.pdf", scanned_pdf("Warranty certificate", [
        "Product: pico projector P-100", "Serial: PJ-0001-SIM", "Valid for two years.",
        "Keep this certificate with your receipt."]))
    chime = root / "Music/Chime.wav"
    if not chime.exists():
        tmp = chime.with_name(".Chime.wav.tmp")
        chime_wav(tmp)
        os.replace(tmp, chime)
        made.append(chime)
    if videos:
        clips = [("Films/Holiday 2025.mp4", "testsrc2=size=640x360:rate=25", 6, 440),
                 ("Films/Fractal zoom.mp4", "mandelbrot=size=640x360:rate=25", 4, 330)]
        for rel, source, seconds, tone in clips:
            path = root / rel
            if path.exists():
                continue
            if film(path, source, seconds, tone):
                made.append(path)
            else:
                log.info("ffmpeg not available: skipped %s", rel)
    return made


def is_empty(root: Path) -> bool:
    """True when the library has no visible files yet."""
    root = Path(root)
    if not root.exists():
        return True
    def visible(p: Path) -> bool:
        return not any(part.startswith(".") for part in p.relative_to(root).parts)

    return not any(p.is_file() and visible(p) for p in root.rglob("*"))
