"""Signed media URLs: strict parsing (ASCII digits, 64 hex digits), bound to id and expiry."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hub.media import signing
from hub.media.signing import UrlSigner

KEY = bytes(range(32))


def parts(url: str) -> tuple[str, str, str]:
    path, query = url.split("?", 1)
    exp, sig = (kv.split("=", 1)[1] for kv in query.split("&"))
    return path.rsplit("/", 1)[1], exp, sig


def test_url_key_is_private_and_persists(tmp_path: Path) -> None:
    s = UrlSigner(tmp_path)
    media_id, exp, sig = parts(s.url(7, ttl=60, now=1000))
    assert (tmp_path / "secrets" / "media-url.key").stat().st_mode & 0o777 == 0o600
    assert s.check(media_id, exp, sig, now=1000) == 7
    assert s.check("8", exp, sig, now=1000) is None  # bound to the id
    assert s.check(media_id, str(int(exp) + 1), sig, now=1000) is None  # and to the expiry
    assert s.check(media_id, exp, sig, now=1061) is None  # expired
    assert UrlSigner(tmp_path).check(media_id, exp, sig.upper(), now=1000) == 7  # the key persists


@given(st.text(max_size=20), st.text(max_size=20), st.text(max_size=80))
def test_any_text_is_an_answer_never_an_exception(media_id: str, exp: str, sig: str) -> None:
    signed = signing.parse(media_id, exp, sig)
    if signed is not None:
        assert media_id.isascii() and exp.isascii() and sig.isascii()
        assert signing.valid(KEY, signed, now=0) in (True, False)


@given(st.integers(0, 10**12), st.integers(0, 10**11), st.sampled_from("²³¹٣۳߃०১੩૩୩௩౩೩൩๓໓༣၃႓០᠓᥆᧓᪃᭓᮳᱃᱓꘣꣓꤃꧓꩓ꯓ０"))
def test_unicode_digits_never_pass(media_id: int, exp: int, digit: str) -> None:
    sig = signing.signature(KEY, media_id, exp)
    assert signing.parse(str(media_id), str(exp), sig) is not None
    for bad_exp in (digit, str(exp) + digit, digit + str(exp)):
        assert signing.parse(str(media_id), bad_exp, sig) is None
    assert signing.parse(str(media_id) + digit, str(exp), sig) is None


@given(st.integers(0, 10**12), st.integers(1, 10**11))
def test_signature_round_trip(media_id: int, exp: int) -> None:
    signed = signing.parse(str(media_id), str(exp), signing.signature(KEY, media_id, exp))
    assert signed is not None
    assert signing.valid(KEY, signed, now=exp)
    assert not signing.valid(KEY, signed, now=exp + 1)
    assert not signing.valid(b"another key", signed, now=0)
