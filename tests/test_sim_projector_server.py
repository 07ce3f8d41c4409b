"""The sans-I/O PJLink server: bytes in, replies out, against a model with a fake clock."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.projector.pjlink import (
    ERRA,
    MAX_LINE,
    Close,
    Output,
    PJLinkServerConnection,
    Send,
    SessionState,
    notification,
    search_reply,
)
from firmware_sim.projector.model import ErrorKind, FakeClock, Level, ProjectorConfig, ProjectorModel

TOKEN = "498e4a67"
# The worked example of the PJLink specification (§5): random 498e4a67, password JBMIAProjectorLink.
SPEC_PASSWORD = "JBMIAProjectorLink"
SPEC_DIGEST = b"5d8409bc1c3fa39749434aa3a5c38682"


def session(password: str | None = SPEC_PASSWORD, clock: FakeClock | None = None,
            **config: object) -> PJLinkServerConnection:
    settings = {"warmup": 20.0, "cooldown": 10.0, **config}
    model = ProjectorModel(ProjectorConfig(**settings),  # type: ignore[arg-type]
                           clock or FakeClock())
    return PJLinkServerConnection(model, password, TOKEN)


def sent(outputs: list[Output]) -> bytes:
    return b"".join(o.data for o in outputs if isinstance(o, Send))


def ask(conn: PJLinkServerConnection, data: bytes) -> bytes:
    return sent(conn.receive_data(data))


def ready(clock: FakeClock | None = None, **config: object) -> PJLinkServerConnection:
    conn = session(None, clock, **config)
    assert conn.state is SessionState.READY
    return conn


def test_greeting_with_and_without_password() -> None:
    assert session().greeting() == b"PJLINK 1 498e4a67\r"
    assert session(None).greeting() == b"PJLINK 0\r"


def test_the_spec_example_digest_authenticates_the_first_command() -> None:
    conn = session()
    assert ask(conn, SPEC_DIGEST + b"%1POWR ?\r") == b"%1POWR=0\r"
    assert conn.state is SessionState.READY
    assert ask(conn, b"%1POWR ?\r") == b"%1POWR=0\r"  # once per connection only


def test_upper_case_digest_is_accepted() -> None:
    assert ask(session(), SPEC_DIGEST.upper() + b"%1CLSS ?\r") == b"%1CLSS=2\r"


@pytest.mark.parametrize("line", [
    b"00000000000000000000000000000000%1POWR ?\r",
    b"%1POWR ?\r",  # no digest at all
    SPEC_DIGEST[:31] + b"\r",
])
def test_a_wrong_or_missing_digest_gets_erra_and_close(line: bytes) -> None:
    conn = session()
    outputs = conn.receive_data(line)
    assert outputs == [Send(ERRA), Close("authentication failed")]
    assert conn.state is SessionState.CLOSED
    assert conn.receive_data(SPEC_DIGEST + b"%1POWR ?\r") == []


@pytest.mark.parametrize("cut", [1, 5, 31, 32, 33, 38, 40])
def test_split_digest_and_command_give_the_same_reply(cut: int) -> None:
    data = SPEC_DIGEST + b"%1POWR ?\r%1INPT ?\r"
    conn = session()
    assert ask(conn, data[:cut]) == b""
    assert ask(conn, data[cut:]) == b"%1POWR=0\r%1INPT=52\r"


def test_class1_queries() -> None:
    conn = ready(name="Attic", serial="SN1", mac="02:00:00:00:00:01")
    assert ask(conn, b"%1NAME ?\r%1INF1 ?\r%1INF2 ?\r%1INFO ?\r%1CLSS ?\r") == (
        b"%1NAME=Attic\r%1INF1=Hub Labs\r%1INF2=PicoBeam P1\r%1INFO=firmware-sim\r%1CLSS=2\r")
    assert ask(conn, b"%1INST ?\r") == b"%1INST=31 32 33 41 51 52\r"
    assert ask(conn, b"%1ERST ?\r%1LAMP ?\r%1AVMT ?\r") == b"%1ERST=000000\r%1LAMP=0 0\r%1AVMT=30\r"


def test_class2_queries() -> None:
    conn = ready(serial="SN1")
    assert ask(conn, b"%2SNUM ?\r%2SVER ?\r%2RRES ?\r%2FILT ?\r%2RLMP ?\r%2RFIL ?\r") == (
        b"%2SNUM=SN1\r%2SVER=1.4.2\r%2RRES=1920x1080\r%2FILT=0\r%2RLMP=LMP-PB1\r"
        b"%2RFIL=FLT-PB1\r")
    assert ask(conn, b"%2INNM ?31\r%2INNM ?52\r%2INNM ?39\r%2INNM 31\r") == (
        b"%2INNM=HDMI1\r%2INNM=Media player\r%2INNM=ERR2\r%2INNM=ERR2\r")
    assert ask(conn, b"%2CLSS ?\r%2POWR ?\r") == b"%2CLSS=2\r%2POWR=0\r"


def test_class2_commands_sent_as_class1_are_undefined() -> None:
    assert ask(ready(), b"%1SNUM ?\r%1FREZ ?\r") == b"%1SNUM=ERR1\r%1FREZ=ERR1\r"


def test_power_cycle_over_the_wire() -> None:
    clock = FakeClock()
    conn = ready(clock)
    assert ask(conn, b"%1POWR 1\r%1POWR ?\r") == b"%1POWR=OK\r%1POWR=3\r"
    assert ask(conn, b"%1POWR 0\r") == b"%1POWR=ERR3\r"  # warming up
    clock.advance(20)
    assert ask(conn, b"%1POWR ?\r%1LAMP ?\r") == b"%1POWR=1\r%1LAMP=0 1\r"
    assert ask(conn, b"%1POWR 0\r%1POWR ?\r%1POWR 1\r") == b"%1POWR=OK\r%1POWR=2\r%1POWR=ERR3\r"
    clock.advance(10)
    assert ask(conn, b"%1POWR ?\r%1POWR 7\r") == b"%1POWR=0\r%1POWR=ERR2\r"


def test_standby_answers_err3_to_input_mute_freeze_volume_and_resolution() -> None:
    conn = ready()
    assert ask(conn, b"%1INPT 31\r%1AVMT 31\r%2FREZ 1\r%2SVOL 1\r%2MVOL 0\r%2IRES ?\r") == (
        b"%1INPT=ERR3\r%1AVMT=ERR3\r%2FREZ=ERR3\r%2SVOL=ERR3\r%2MVOL=ERR3\r%2IRES=ERR3\r")


def test_controls_while_on() -> None:
    clock = FakeClock()
    conn = ready(clock)
    ask(conn, b"%1POWR 1\r")
    clock.advance(20)
    assert ask(conn, b"%1INPT 32\r%1INPT ?\r%2IRES ?\r") == b"%1INPT=OK\r%1INPT=32\r%2IRES=-\r"
    assert ask(conn, b"%2INPT 51\r%2INPT ?\r%2IRES ?\r") == b"%2INPT=OK\r%2INPT=51\r%2IRES=1280x720\r"
    assert ask(conn, b"%1INPT 19\r%1INPT 3A\r%2INPT 3A\r%1INPT x\r") == (
        b"%1INPT=ERR2\r%1INPT=ERR2\r%2INPT=ERR2\r%1INPT=ERR2\r")
    assert ask(conn, b"%1AVMT 11\r%1AVMT ?\r%1AVMT 21\r%1AVMT ?\r%1AVMT 10\r%1AVMT ?\r") == (
        b"%1AVMT=OK\r%1AVMT=11\r%1AVMT=OK\r%1AVMT=31\r%1AVMT=OK\r%1AVMT=21\r")
    assert ask(conn, b"%1AVMT 30\r%1AVMT ?\r%1AVMT 41\r") == b"%1AVMT=OK\r%1AVMT=30\r%1AVMT=ERR2\r"
    assert ask(conn, b"%2FREZ 1\r%2FREZ ?\r%2FREZ 2\r") == b"%2FREZ=OK\r%2FREZ=1\r%2FREZ=ERR2\r"
    before = conn.model.speaker_volume
    assert ask(conn, b"%2SVOL 1\r%2SVOL 1\r%2SVOL ?\r") == b"%2SVOL=OK\r%2SVOL=OK\r%2SVOL=ERR2\r"
    assert conn.model.speaker_volume == before + 2


def test_injected_faults_show_in_erst_and_power_on_fails_with_err4() -> None:
    conn = ready()
    conn.model.set_error(ErrorKind.COVER, Level.ERROR)
    conn.model.set_error(ErrorKind.FILTER, Level.WARNING)
    assert ask(conn, b"%1ERST ?\r%1POWR 1\r") == b"%1ERST=000210\r%1POWR=ERR4\r"


def test_unknown_commands_missing_separator_and_query_only_commands() -> None:
    conn = ready()
    assert ask(conn, b"%1XYZW ?\r%1POWR\r%1POWR?\r%1ERST 1\r%3POWR ?\r") == (
        b"%1XYZW=ERR1\r%1POWR=ERR2\r%1POWR=ERR2\r%1ERST=ERR2\r%3POWR=ERR1\r")


def test_commands_are_case_insensitive_and_crlf_is_tolerated() -> None:
    assert ask(ready(), b"%1powr ?\r\n%1clss ?\r\n") == b"%1POWR=0\r%1CLSS=2\r"


def test_non_commands_are_dropped_without_an_answer() -> None:
    conn = ready()
    assert ask(conn, b"hello\r\x00\xff\xfe\r%\r%1\xff\xffAB ?\r") == b""
    assert ask(conn, b"%1POWR ?\r") == b"%1POWR=0\r"


def test_a_line_over_136_bytes_is_answered_err2_and_the_session_goes_on() -> None:
    conn = ready()
    line = b"%1POWR " + b"1" * (MAX_LINE - 8) + b"\r"
    assert len(line) == MAX_LINE
    assert ask(conn, line) == b"%1POWR=ERR2\r"  # 136 bytes: at the limit, but not a power value
    long = b"%1POWR " + b"1" * 5000  # arrives in pieces with no CR for a long time
    assert ask(conn, long[:2000]) == b""
    assert ask(conn, long[2000:]) == b""
    assert ask(conn, b"1\r%1POWR ?\r") == b"%1POWR=ERR2\r%1POWR=0\r"
    assert len(conn._buf) < MAX_LINE


def test_a_digest_sent_to_a_unit_without_password_is_ignored() -> None:
    digest = hashlib.md5(b"whatever").hexdigest().encode()
    assert ask(ready(), digest + b"%1POWR ?\r") == b"%1POWR=0\r"


def test_utf8_name_in_replies_and_bad_utf8_parameters() -> None:
    conn = ready(name="Salle de séjour")
    assert ask(conn, b"%1NAME ?\r") == "%1NAME=Salle de séjour\r".encode()
    assert ask(conn, b"%1POWR \xff\r") == b"%1POWR=ERR2\r"


def test_udp_search_and_notifications() -> None:
    mac = "02:aa:bb:cc:dd:ee"
    assert search_reply(b"%2SRCH\r", mac) == b"%2ACKN=02:aa:bb:cc:dd:ee\r"
    assert len(search_reply(b"%2SRCH\r", mac) or b"") == 25
    assert search_reply(b"%2SRCH", mac) is not None
    assert search_reply(b"%1SRCH\r", mac) is None
    assert search_reply(b"\x00" * 1000, mac) is None
    assert notification("POWR", "1") == b"%2POWR=1\r"
    assert notification("LKUP", mac) == b"%2LKUP=02:aa:bb:cc:dd:ee\r"
    with pytest.raises(ValueError):
        notification("INPT", "x" * 30)


# -- properties: garbage never raises; how bytes are split never changes the replies --------

COMMANDS = [b"%1POWR ?\r", b"%1POWR 1\r", b"%1INPT 31\r", b"%2INNM ?32\r", b"%1AVMT 31\r",
            b"%2FREZ 1\r", b"%2SVOL 1\r", b"%1LAMP ?\r", b"%2IRES ?\r", b"%1ERST ?\r",
            b"%1XXXX ?\r", b"garbage\r", b"%1POWR\r", b"\r", b"\n", b"%2INST ?\r"]


def _run(password: str | None, chunks: list[bytes]) -> tuple[bytes, SessionState]:
    conn = session(password, warmup=0)
    out = b"".join(ask(conn, c) for c in chunks)
    return out, conn.state


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.sampled_from(COMMANDS), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=10),
       with_password=st.booleans())
def test_split_and_coalesced_input_give_the_same_replies(
        lines: list[bytes], cuts: list[int], with_password: bool) -> None:
    password = SPEC_PASSWORD if with_password else None
    data = (SPEC_DIGEST if with_password else b"") + b"".join(lines)
    whole = _run(password, [data])
    assert _run(password, _split(data, cuts)) == whole
    assert _run(password, [bytes([b]) for b in data]) == whole


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300) | st.sampled_from(COMMANDS), max_size=8),
       mode=st.sampled_from(["open", "authenticated", "unauthenticated"]))
def test_garbage_never_raises_and_every_reply_is_a_pjlink_line(
        chunks: list[bytes], mode: str) -> None:
    conn = session(None if mode == "open" else SPEC_PASSWORD)
    if mode == "authenticated":
        assert ask(conn, SPEC_DIGEST + b"%1CLSS ?\r") == b"%1CLSS=2\r"
    for chunk in chunks:
        outputs = conn.receive_data(chunk)
        for out in outputs:
            if isinstance(out, Send):
                assert out.data.endswith(b"\r") and len(out.data) <= MAX_LINE
                assert out.data == ERRA or out.data.startswith(b"%")
    assert len(conn._buf) <= MAX_LINE + 32
