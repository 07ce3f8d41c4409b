"""HTTP conditional and range semantics for downloads (RFC 9110 §13.1, §14), as pure code.

`plan_download` takes the request's validator headers and the representation's size and
ETag and says what to send: 200 full, 206 one range, 304, or 416 — no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from datetime import datetime, timezone

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class DownloadPlan:
    """What to answer: status and the byte span [start, end) of the body."""

    status: int  # 200 | 206 | 304 | 416
    start: int = 0
    end: int = 0
    size: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self) -> str | None:
        """Content-Range for 206 and 416 (RFC 9110 §14.4)."""
        if self.status == 206:
            return f"bytes {self.start}-{self.end - 1}/{self.size}"
        if self.status == 416:
            return f"bytes */{self.size}"
        return None


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One byte range of `size` as [start, end), "unsatisfiable", or None to ignore the header.

    RFC 9110 §14.1.2: `first-last`, `first-` and `-suffix`. Several ranges or bad syntax are
    ignored (a server MAY ignore Range, §14.2) and the full representation is sent.
    """
    m = _RANGE_RE.match(header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        if size == 0:
            return None  # nothing to cut; send the (empty) full body
        return max(0, size - suffix), size
    start = int(first)
    if last != "" and int(last) < start:
        return None  # invalid range-spec: ignore the header
    if start >= size:
        return "unsatisfiable"
    end = size if last == "" else min(int(last) + 1, size)
    return start, end


def etag_matches_strong(header: str, etag: str) -> bool:
    """Strong comparison of one entity tag (RFC 9110 §8.8.3.2); weak tags never match."""
    return header.strip() == etag and not etag.startswith("W/")


def _if_none_match(header: str, etag: str) -> bool:
    """True when If-None-Match matches (weak comparison, RFC 9110 §13.1.2)."""
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return True
    bare = etag.removeprefix("W/")
    return any(t.removeprefix("W/") == bare for t in tags)


def _if_range_holds(header: str, etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110 §13.1.5: an entity tag must match strongly; a date must equal Last-Modified."""
    value = header.strip()
    if value.startswith('"') or value.startswith("W/"):
        return etag_matches_strong(value, etag)
    if last_modified is None:
        return False
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return when is not None and int(when.timestamp()) == int(last_modified.timestamp())


def plan_download(*, size: int, etag: str, last_modified: datetime | None = None,
                  range_header: str | None = None, if_range: str | None = None,
                  if_none_match: str | None = None, honour_range: bool = True) -> DownloadPlan:
    """Decide the response to a GET of a representation (RFC 9110 §13.2.2 order)."""
    full = DownloadPlan(200, 0, size, size)
    if if_none_match is not None and _if_none_match(if_none_match, etag):
        return DownloadPlan(304, 0, 0, size)
    if range_header is None or not honour_range:
        return full
    if if_range is not None and not _if_range_holds(if_range, etag, last_modified):
        return full
    span = parse_range(range_header, size)
    if span is None:
        return full
    if span == "unsatisfiable":
        return DownloadPlan(416, 0, 0, size)
    start, end = span
    return DownloadPlan(206, start, end, size)


def http_date(when: datetime) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7)."""
    return format_datetime(when.astimezone(timezone.utc), usegmt=True)
