"""The PJLink codec alone: bytes in, events out, no sockets (spec facts from JBMIA Class 1/2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import pjlink_codec as pj
from devices.pjlink_search import SearchAck, StatusNotice, parse_datagram


def events(conn: pj.ClientConnection) -> list[pj.Event]:
    out = []
    while (ev := conn.next_event()) is not pj.NEED_DATA:
        out.append(ev)
    return out


def feed(chunks: list[bytes], password: str | None = None) -> list[pj.Event]:
    conn = pj.ClientConnection(password)
    for c in chunks:
        if c:  # b"" means EOF (h11 convention)
            conn.receive_data(c)
    return events(conn)


def test_spec_auth_digest_example() -> None:
    assert pj.auth_digest("498e4a67", "JBMIAProjectorLink") == "5d8409bc1c3fa39749434aa3a5c38682"


def test_digest_goes_in_front_of_the_first_command_only() -> None:
    conn = pj.ClientConnection("JBMIAProjectorLink")
    conn.receive_data(b"PJLINK 1 498e4a67\r")
    assert events(conn) == [pj.Greeting("498e4a67")]
    assert conn.send(1, "POWR", "?") == b"5d8409bc1c3fa39749434aa3a5c38682%1POWR ?\r"
    assert conn.send(1, "POWR", "1") == b"%1POWR 1\r"


def test_no_auth_greeting_sends_plain_commands() -> None:
    conn = pj.ClientConnection("ignored")
    conn.receive_data(b"PJLINK 0\r")
    assert events(conn) == [pj.Greeting(None)]
    assert conn.send(2, "inpt", "3A") == b"%2INPT 3A\r"


def test_auth_required_without_password_is_an_auth_error() -> None:
    conn = pj.ClientConnection(None)
    conn.receive_data(b"PJLINK 1 00112233\r")
    with pytest.raises(pj.AuthenticationFailed):
        conn.send(1, "POWR", "?")


def test_erra_is_auth_rejected() -> None:
    assert feed([b"PJLINK 1 498e4a67\r", b"PJLINK ERRA\r"]) == [pj.Greeting("498e4a67"), pj.AuthRejected()]


@pytest.mark.parametrize(
    ("code", "exc"),
    [("ERR1", pj.UndefinedCommand), ("ERR2", pj.OutOfParameter), ("ERR3", pj.UnavailableTime),
     ("ERR4", pj.ProjectorFailure), ("err3", pj.UnavailableTime)],
)
def test_err_codes_map_to_typed_errors(code: str, exc: type[pj.CommandRejected]) -> None:
    (_, reply) = feed([b"PJLINK 0\r%1INPT=" + code.encode() + b"\r"])
    assert isinstance(reply, pj.Reply)
    err = reply.error
    assert isinstance(err, exc) and isinstance(err, pj.PJLinkError)
    assert err.command == "INPT" and exc.code in str(err)


def test_ok_and_values_are_not_errors() -> None:
    (_, a, b) = feed([b"PJLINK 0\r%1POWR=OK\r%1POWR=1\r"])
    assert a == pj.Reply(1, "POWR", "OK") and a.error is None
    assert b == pj.Reply(1, "POWR", "1") and b.error is None


STREAM = b"PJLINK 0\r%1POWR=OK\r%2LKUP=00:26:ab:00:00:01\r%2INNM=HDMI 1\r%1LAMP=1200 1 300 0\r%1ERST=000010\r"


def test_split_and_coalesced_give_the_same_events() -> None:
    whole = feed([STREAM])
    bytewise = feed([bytes([b]) for b in STREAM])
    assert whole == bytewise
    assert len(whole) == 6 and all(not isinstance(e, pj.ProtocolError) for e in whole)


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert feed(chunks) == feed([STREAM])


@settings(max_examples=400)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=10))
def test_any_bytes_any_split_give_events_never_exceptions(data: bytes, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if c <= len(data)})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    conn = pj.ClientConnection("pw")
    for c in chunks:
        if c:
            conn.receive_data(c)
    conn.receive_data(b"")  # EOF flushes anything unterminated
    evs = events(conn)
    assert evs[-1] == pj.Closed()
    allowed = (pj.Greeting, pj.AuthRejected, pj.Reply, pj.ProtocolError, pj.Closed)
    assert all(isinstance(e, allowed) for e in evs)
    # Same bytes in one piece → same events: splitting never changes the meaning.
    whole = pj.ClientConnection("pw")
    if data:
        whole.receive_data(data)
    whole.receive_data(b"")
    assert events(whole) == evs


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_garbage_lines_are_protocol_errors_and_the_stream_recovers(junk: bytes) -> None:
    junk = junk.replace(b"\r", b"")
    evs = feed([b"PJLINK 0\r" + junk + b"\r%1POWR=1\r"])
    assert evs[0] == pj.Greeting(None)
    assert evs[-1] == pj.Reply(1, "POWR", "1")
    assert all(isinstance(e, pj.ProtocolError | pj.Reply | pj.AuthRejected | pj.Greeting) for e in evs[1:-1])


def test_line_longer_than_136_bytes_is_a_protocol_error_then_recovery() -> None:
    evs = feed([b"PJLINK 0\r%1NAME=" + b"x" * 200, b"yyy\r%1POWR=0\r"])
    assert evs[0] == pj.Greeting(None)
    assert isinstance(evs[1], pj.ProtocolError) and "136" in evs[1].reason
    assert evs[2:] == [pj.Reply(1, "POWR", "0")]


def test_reply_before_greeting_and_bad_greeting_are_protocol_errors() -> None:
    evs = feed([b"%1POWR=1\rPJLINK 7\rPJLINK 0\rPJLINK 0\r"])
    assert [type(e) for e in evs] == [pj.ProtocolError, pj.ProtocolError, pj.Greeting, pj.ProtocolError]


def test_crlf_firmware_is_tolerated() -> None:
    assert feed([b"PJLINK 0\r\n%1POWR=1\r\n"]) == [pj.Greeting(None), pj.Reply(1, "POWR", "1")]


def test_utf8_names_and_bad_bytes_in_params() -> None:
    (_, a, b) = feed(["PJLINK 0\r%1NAME=Salle à manger\r".encode() + b"%1NAME=\xff\xfe\r"])
    assert a == pj.Reply(1, "NAME", "Salle à manger")
    assert isinstance(b, pj.Reply) and b.command == "NAME"


def test_encode_rejects_what_the_spec_forbids() -> None:
    for args in [(3, "POWR", "1"), (1, "POW", "1"), (1, "POWR", "1\r"), (1, "NAME", "x" * 129)]:
        with pytest.raises(ValueError):
            pj.encode_command(*args)


def test_value_decoders() -> None:
    assert pj.decode_power("3") == "warming" and pj.decode_power("2") == "cooling"
    assert pj.decode_inputs("11 31 32 3A 61") == ("11", "31", "32", "3A", "61")
    assert pj.input_class("31") == 1 and pj.input_class("3A") == 2 and pj.input_class("61") == 2
    assert pj.decode_mute("31") == (True, True) and pj.decode_mute("21") == (False, True)
    assert pj.decode_errors("012000") == {"fan": "ok", "lamp": "warning", "temperature": "error",
                                          "cover": "ok", "filter": "ok", "other": "ok"}
    assert pj.decode_lamps("1200 1 300 0") == ((1200, True), (300, False))
    assert pj.decode_hours("300") == 300 and pj.decode_flag("1") is True
    assert pj.normalize_mac("00:26:AB:00:00:01") == "0026ab000001"
    for fn, bad in [(pj.decode_power, "9"), (pj.decode_inputs, "71"), (pj.decode_inputs, "30"),
                    (pj.decode_errors, "01200"), (pj.decode_lamps, "12 x"), (pj.decode_hours, "²"),
                    (pj.decode_mute, "41"), (pj.decode_flag, "")]:
        with pytest.raises(pj.BadReply):
            fn(bad)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_value_decoders_raise_only_bad_reply(text: str) -> None:
    for fn in (pj.decode_power, pj.decode_inputs, pj.decode_mute, pj.decode_errors,
               pj.decode_lamps, pj.decode_hours, pj.decode_flag):
        try:
            fn(text)
        except pj.BadReply:
            pass


def test_udp_datagrams() -> None:
    assert parse_datagram(b"%2ACKN=00:26:AB:00:00:01\r") == [SearchAck("0026ab000001")]
    assert parse_datagram(b"%2POWR=1\r") == [StatusNotice("POWR", "1")]
    assert parse_datagram(b"%2LKUP=00:26:ab:00:00:01") == [StatusNotice("LKUP", "00:26:ab:00:00:01")]
    assert parse_datagram(b"%2SRCH\r") == []
    [bad] = parse_datagram(b"%2ACKN=nope\r")
    assert isinstance(bad, pj.ProtocolError)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_datagram_gives_events_never_exceptions(data: bytes) -> None:
    for ev in parse_datagram(data):
        assert isinstance(ev, SearchAck | StatusNotice | pj.ProtocolError)
