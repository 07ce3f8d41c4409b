"""The Shelly driver's sans-I/O part: announcements, frames, status → exposes, commands, to the edges."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import shelly_rpc as rpc
from devices.shelly import Options
from hub.driver import DeviceRejected

PLUG_STATUS = {"switch:0": {"id": 0, "source": "init", "output": False, "apower": 0.0, "voltage": 230.4,
                            "current": 0.0, "aenergy": {"total": 1.5, "by_minute": [0, 0, 0], "minute_ts": 1},
                            "temperature": {"tC": 38.0, "tF": 100.4}},
               "input:0": {"id": 0, "state": False}, "sys": {"mac": "A8032AB1F001"}}
COVER_STATUS = {"cover:0": {"id": 0, "state": "closed", "current_pos": 0, "apower": 0.0, "voltage": 230.0,
                            "current": 0.0, "aenergy": {"total": 0.0}}}


def test_announcements() -> None:
    assert rpc.read_announcement("shellypro4pm-F008D1D8B8B8._shelly._tcp.local.", {"gen": "2", "app": "Pro4PM"}) \
        == rpc.Announcement(2, "Pro4PM", "", "f008d1d8b8b8")
    assert rpc.read_announcement("x", {"gen": "3", "id": "shelly1minig3-543204522cfc"}).mac == "543204522cfc"
    assert rpc.read_announcement("shelly1-aabbccddeeff", {"gen": "1"}) is None
    with pytest.raises(ValueError):
        rpc.read_announcement("shellyplus1-aabbccddeef", {"gen": "2"})  # 11 digits
    assert rpc.device_id_for("A8:03:2A:B1:F0:01") == "shelly-a8032ab1f001"


def test_plug_status_becomes_exposes_and_values() -> None:
    wiring = rpc.wiring_for(PLUG_STATUS)
    assert [e.name for e in wiring.exposes] == ["on", "power", "energy", "voltage", "current", "temperature"]
    flat, problems = rpc.flatten(PLUG_STATUS)
    assert problems == []
    assert wiring.decode(flat) == ({"on": False, "power": 0.0, "energy": 1.5, "voltage": 230.4, "current": 0.0,
                                    "temperature": 38.0}, [])
    # a NotifyStatus names only what changed, down into aenergy: no total, no energy, no complaint
    assert wiring.decode(rpc.flatten({"switch:0": {"aenergy": {"by_minute": [1, 0, 0]}}})[0]) == ({}, [])


def test_cover_commands_and_the_fields_errors_name() -> None:
    wiring = rpc.wiring_for(COVER_STATUS)
    assert {e.name for e in wiring.exposes} >= {"position", "state", "action"}
    assert rpc.calls_for(wiring.encode({"position": 40})) == [
        rpc.Call("Cover.GoToPosition", {"id": 0, "pos": 40}, {"pos": "cover:0/current_pos"})]
    [stop] = rpc.calls_for(wiring.encode({"action": "stop"}))
    assert (stop.method, stop.params) == ("Cover.Stop", {"id": 0})
    [go] = rpc.calls_for(wiring.encode({"position": 40}))
    err = rpc.RpcError(-103, "Invalid argument 'pos': out of range [0..100]")
    assert rpc.expose_of(wiring, rpc.blamed_key(go, err)) == "position"
    assert rpc.blamed_key(go, rpc.RpcError(-109, "Cover is calibrating")) == "cover:0/current_pos"
    with pytest.raises(DeviceRejected):
        wiring.encode({"on": True})


def test_frames() -> None:
    assert rpc.parse_frame('{"id": 3, "src": "d", "result": {"was_on": true}}') == rpc.Response(3, {"was_on": True})
    note = rpc.parse_frame('{"src": "d", "dst": "hub", "method": "NotifyStatus", "params": {"ts": 1}}')
    assert note == rpc.Notification("NotifyStatus", {"ts": 1})
    err = rpc.parse_frame('{"id": 4, "error": {"code": -103, "message": "Invalid argument \'on\'"}}')
    assert isinstance(err, rpc.Response) and err.error is not None and err.error.argument() == "on"
    assert rpc.parse_frame('{"id": 5, "method": "Foo.Bar"}') is None  # a request from the device: not served
    for junk in ["nope", "[]", '{"id": 1}', '{"method": 5}', '{"id": 1, "error": {"code": "x"}}', "x" * 300_000]:
        with pytest.raises(ValueError):
            rpc.parse_frame(junk)
    assert rpc.request(1, "hub", "Shelly.GetStatus") == {"id": 1, "src": "hub", "method": "Shelly.GetStatus"}


def test_password_keys_are_normalised() -> None:
    o = Options(passwords={"A8:03:2A:B1:F0:01": "pw-one", "Shelly-A8032AB1F002": "pw-two", "shellyplus2pm-x": "pw-3"})
    assert set(o.passwords) == {"a8032ab1f001", "shelly-a8032ab1f002", "shellyplus2pm-x"}
    assert "pw-" not in repr(o)  # SecretStr


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["switch:0", "cover:0", "light:0", "switch:x", "sys", "ts"]),
                       json_values, max_size=4))
def test_any_status_decodes_to_values_or_problems(status: dict) -> None:
    """Whatever a device sends as a status, the pure part answers values and problems, never raises."""
    flat, _ = rpc.flatten(status)
    wiring = rpc.wiring_for(status)
    values, _ = wiring.decode(flat)
    for name, value in values.items():
        assert wiring.wire(name).expose.validate(value) == value
    full = rpc.wiring_for({**PLUG_STATUS, **COVER_STATUS})
    full.decode(flat)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(json.dumps))
def test_any_frame_parses_or_is_refused_with_a_reason(data: bytes | str) -> None:
    try:
        rpc.parse_frame(data)
    except ValueError as e:
        assert str(e)
