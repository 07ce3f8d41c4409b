"""The Shelly Gen2 simulator's pure parts: digest auth, frames, components over simulated time."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.shelly import build
from firmware_sim.shelly.auth import DigestGuard, make_ha1, parse_digest_header, sha256_hex
from firmware_sim.shelly.components import RpcError
from firmware_sim.shelly.device import delta
from firmware_sim.shelly.rpc import Request, answer, parse_frame, query_params

T0 = 1_800_000_000.0


def ws_auth(guard: DigestGuard, password: str, nonce: int, nc: int, cnonce: str = "abc") -> dict:
    """The `auth` object as the Shelly docs (and aioshelly) compute it."""
    ha1 = make_ha1(guard.realm, password)
    ha2 = sha256_hex("dummy_method:dummy_uri")
    return {"realm": guard.realm, "username": "admin", "nonce": nonce, "cnonce": cnonce, "nc": nc,
            "algorithm": "SHA-256", "response": sha256_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")}


def test_ws_digest_accepts_the_right_password_once_per_nc() -> None:
    guard = DigestGuard("shellyplus1pm-a8032ab1f001")
    guard.set_password("secret")
    nonce = guard.challenge_object(T0)["nonce"]
    assert guard.verify_object(ws_auth(guard, "secret", nonce, 1), T0) == "ok"
    assert guard.verify_object(ws_auth(guard, "secret", nonce, 1), T0) == "stale"  # replayed nc
    assert guard.verify_object(ws_auth(guard, "secret", nonce, 2), T0) == "ok"
    assert guard.verify_object(ws_auth(guard, "wrong", nonce, 3), T0) == "bad"
    assert guard.verify_object(ws_auth(guard, "secret", 12345, 1), T0) == "stale"  # never issued
    assert guard.verify_object(ws_auth(guard, "secret", nonce, 4), T0 + 3600) == "stale"  # expired


def test_http_challenge_header_is_rfc7616_sha256() -> None:
    guard = DigestGuard("shellyplus1pm-a8032ab1f001")
    guard.set_password("secret")
    p = parse_digest_header(guard.challenge_header(T0))
    assert p is not None
    assert (p["qop"], p["realm"], p["algorithm"]) == ("auth", "shellyplus1pm-a8032ab1f001", "SHA-256")
    ha1 = make_ha1(p["realm"], "secret")
    uri = "/rpc/Switch.Set?id=0&on=true"
    ha2 = sha256_hex(f"GET:{uri}")
    resp = sha256_hex(f"{ha1}:{p['nonce']}:00000001:xyz:auth:{ha2}")
    header = (f'Digest username="admin", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
              f'cnonce="xyz", nc=00000001, qop=auth, response="{resp}", algorithm=SHA-256')
    assert guard.verify_header(header, "GET", "/rpc/Other", T0) == "bad"  # uri of another request
    assert guard.verify_header(header, "GET", uri, T0) == "ok"
    assert guard.verify_header("Basic YWRtaW46c2VjcmV0", "GET", uri, T0) == "bad"
    assert guard.verify_header('Digest garbage,,="', "GET", uri, T0) == "bad"


def test_switch_set_answers_was_on_and_meters_energy() -> None:
    dev = build("plus1pm", booted_at=T0)
    assert dev.call("Switch.Set", {"id": 0, "on": True}, T0) == {"was_on": False}
    assert dev.call("Switch.Set", {"id": 0, "on": True}, T0 + 1) == {"was_on": True}
    status = dev.status(T0 + 3600)["switch:0"]
    assert status["output"] is True and status["apower"] == 60.0
    assert status["aenergy"]["total"] == pytest.approx(60.0, abs=0.01)  # one hour at 60 W
    assert status["current"] == pytest.approx(60.0 / status["voltage"], abs=0.001)
    assert set(status) >= {"id", "output", "apower", "voltage", "current", "aenergy", "temperature"}


def test_cover_moves_over_simulated_time_and_stops_at_target() -> None:
    dev = build("plus2pm-cover", booted_at=T0)
    assert dev.call("Cover.GoToPosition", {"id": 0, "pos": 60}, T0) is None
    moving = dev.status(T0 + 6)["cover:0"]
    assert (moving["state"], moving["current_pos"], moving["target_pos"]) == ("opening", 30, 60)
    assert dev.next_deadline(T0 + 6) == pytest.approx(T0 + 12)  # 20 s for 0..100
    done = dev.status(T0 + 30)["cover:0"]
    assert (done["state"], done["current_pos"]) == ("stopped", 60) and "target_pos" not in done
    dev.call("Cover.Open", {"id": 0}, T0 + 30)
    assert dev.status(T0 + 60)["cover:0"]["state"] == "open"
    dev.call("Cover.Close", {"id": 0}, T0 + 60)
    dev.call("Cover.Stop", {"id": 0}, T0 + 65)
    stopped = dev.status(T0 + 90)["cover:0"]
    assert (stopped["state"], stopped["current_pos"], stopped["last_direction"]) == ("stopped", 75, "close")


def test_dimmer_light_set() -> None:
    dev = build("dimmer", booted_at=T0)
    dev.call("Light.Set", {"id": 0, "on": True, "brightness": 40}, T0)
    assert dev.status(T0)["light:0"] == {"id": 0, "source": "rpc", "output": True, "brightness": 40}
    with pytest.raises(RpcError) as err:
        dev.call("Light.Set", {"id": 0}, T0)
    assert err.value.code == -103


@pytest.mark.parametrize(("method", "params", "code"), [
    ("Switch.Set", {"id": 0}, -103),
    ("Switch.Set", {"id": 0, "on": "yes"}, -103),
    ("Switch.Set", {"on": True}, -103),
    ("Switch.Set", {"id": 7, "on": True}, -105),
    ("Switch.Set", {"id": "0", "on": True}, -103),
    ("Switch.Set", {"id": True, "on": True}, -103),
    ("Switch.Set", [1, 2], -103),
    ("Switch.Explode", {"id": 0}, 404),
    ("Nope", {}, 404),
    ("Shelly.GetComponents", {"offset": -1}, -103),
    ("Shelly.SetAuth", {"user": "root", "realm": "x", "ha1": None}, -103),
])
def test_bad_calls_get_the_device_error(method: str, params: object, code: int) -> None:
    dev = build("plus1pm", booted_at=T0)
    with pytest.raises(RpcError) as err:
        dev.call(method, params, T0)
    assert err.value.code == code


@pytest.mark.parametrize("data", [b"", b"{", b"[1]", b'"x"', b'{"id":1}', b'{"id":1,"method":7}',
                                  b"\xff\xfe", b"{" * 70000])
def test_garbage_frames_get_an_error_frame(data: bytes) -> None:
    out = parse_frame(data)
    assert isinstance(out, dict) and out["error"]["code"] in (-32700, -32600)


def test_frame_with_auth_on_a_protected_device() -> None:
    dev = build("plus1pm", booted_at=T0, password="pw")
    req = parse_frame(json.dumps({"id": 3, "src": "me", "method": "Switch.Toggle", "params": {"id": 0}}))
    assert isinstance(req, Request)
    denied = answer(dev, req, T0)
    assert denied["error"]["code"] == 401 and denied["dst"] == "me"
    challenge = json.loads(denied["error"]["message"])
    assert challenge["realm"] == "shellyplus1pm-a8032ab1f001" and challenge["algorithm"] == "SHA-256"
    req = Request(3, "me", "Switch.Toggle", {"id": 0}, ws_auth(dev.guard, "pw", challenge["nonce"], 1))
    assert answer(dev, req, T0) == {"id": 3, "src": "shellyplus1pm-a8032ab1f001", "dst": "me",
                                    "result": {"was_on": False}}
    info = answer(dev, Request(4, "me", "Shelly.GetDeviceInfo", None, None), T0)["result"]
    assert info["auth_en"] is True and info["auth_domain"] == info["id"]


def test_set_auth_turns_auth_off_and_on() -> None:
    dev = build("plus1pm", booted_at=T0)
    realm = dev.identity.device_id
    dev.call("Shelly.SetAuth", {"user": "admin", "realm": realm, "ha1": make_ha1(realm, "pw")}, T0)
    assert dev.device_info()["auth_en"] is True
    dev.call("Shelly.SetAuth", {"user": "admin", "realm": realm, "ha1": None}, T0)
    assert dev.device_info()["auth_en"] is False


def test_query_values_follow_the_rpc_channel_rules() -> None:
    assert query_params([("id", "0"), ("on", "true"), ("name", "hall"), ("x", '{"a":1}'), ("n", "1.5"),
                         ("s", '"5"'), ("bad", "{oops")]) == {
        "id": 0, "on": True, "name": "hall", "x": {"a": 1}, "n": 1.5, "s": "5", "bad": "{oops"}


def test_delta_keeps_only_changed_fields() -> None:
    before = {"switch:0": {"id": 0, "output": False, "aenergy": {"total": 1.0, "minute_ts": 5}}}
    after = {"switch:0": {"id": 0, "output": True, "aenergy": {"total": 1.0, "minute_ts": 6}}}
    assert delta(before, after) == {"switch:0": {"output": True, "aenergy": {"minute_ts": 6}}}
    assert delta(after, after) == {}


def test_set_config_changes_the_name_and_queues_config_changed() -> None:
    dev = build("plus2pm-cover", booted_at=T0)
    rev = dev.config()["sys"]["cfg_rev"]
    assert dev.call("Cover.SetConfig", {"id": 0, "config": {"name": "Blind", "maxtime_open": 10}}, T0) == {
        "restart_required": False}
    assert dev.call("Cover.GetConfig", {"id": 0}, T0)["name"] == "Blind"
    dev.call("Sys.SetConfig", {"config": {"device": {"name": "Living room"}}}, T0)
    assert dev.config()["sys"]["device"]["name"] == "Living room" and dev.device_info()["name"] == "Living room"
    events = dev.take_events()
    assert [(e["component"], e["event"]) for e in events] == [("cover:0", "config_changed"), ("sys", "config_changed")]
    assert events[-1]["cfg_rev"] == rev + 2 and dev.take_events() == []
    dev.call("Cover.Open", {"id": 0}, T0)  # 10 s travel now
    with pytest.raises(RpcError) as err:
        dev.call("Cover.SetConfig", {"id": 0, "config": {"name": "x"}}, T0 + 1)
    assert err.value.code == -109  # docs: no config changes while moving
    assert dev.status(T0 + 10)["cover:0"]["state"] == "open"
    for bad in ({"id": 0}, {"id": 0, "config": {"name": 5}}, {"id": 0, "config": {"maxtime_open": 0}}):
        with pytest.raises(RpcError) as err:
            dev.call("Cover.SetConfig", bad, T0 + 20)
        assert err.value.code == -103


def test_toggle_after_flips_back_when_its_time_comes() -> None:
    dev = build("plus1pm", booted_at=T0)
    dev.call("Switch.Set", {"id": 0, "on": True, "toggle_after": 30}, T0)
    running = dev.status(T0 + 10)["switch:0"]
    assert running["output"] is True and (running["timer_started_at"], running["timer_duration"]) == (T0, 30)
    assert dev.next_deadline(T0 + 10) == T0 + 30
    after = dev.status(T0 + 3600)["switch:0"]
    assert (after["output"], after["source"]) == (False, "timer") and "timer_duration" not in after
    assert after["aenergy"]["total"] == pytest.approx(60 * 30 / 3600, abs=0.001)  # on for 30 s only
    dev.call("Switch.Set", {"id": 0, "on": True, "toggle_after": 30}, T0 + 4000)
    dev.call("Switch.Set", {"id": 0, "on": True}, T0 + 4010)  # a plain Set cancels the timer
    assert dev.status(T0 + 5000)["switch:0"]["output"] is True
    light = build("dimmer", booted_at=T0)
    light.call("Light.Set", {"id": 0, "on": True, "toggle_after": 5}, T0)
    assert light.status(T0 + 5)["light:0"]["output"] is False


@pytest.mark.parametrize(("text", "mac"), [("a8:03:2a:b1:f0:01", "A8032AB1F001"), ("A8032AB1F001", "A8032AB1F001"),
                                           ("shellyplus1pm-a8032ab1f001", "A8032AB1F001"),
                                           ("a8-03-2a-b1-f0-01", "A8032AB1F001")])
def test_cli_id_gives_the_mac(text: str, mac: str) -> None:
    from firmware_sim.shelly.command import mac_of
    assert mac_of(text) == mac


def test_cli_id_rejects_garbage() -> None:
    from firmware_sim.shelly.command import mac_of
    with pytest.raises(ValueError):
        mac_of("shellyplus1pm-xyz")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
param_values = st.dictionaries(st.sampled_from(["id", "on", "pos", "rel", "brightness", "duration", "toggle_after",
                                                "config", "offset", "dynamic_only", "user", "realm", "ha1"]),
                               json_values, max_size=5)


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(["plus1pm", "plus2pm-cover", "dimmer"]), data=st.data())
def test_any_params_get_a_result_or_a_device_error(model: str, data: st.DataObject) -> None:
    dev = build(model, booted_at=T0)
    method = data.draw(st.sampled_from(dev.methods() + ["Switch.Set", "Cover.GoToPosition", "Light.Set", "X.Y"]))
    params = data.draw(param_values | json_values)
    try:
        dev.call(method, params, T0)
    except RpcError as err:
        assert isinstance(err.code, int) and err.message
    json.dumps(dev.status(T0 + 100))  # still answers, still serialisable


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_parse_to_a_request_or_an_error_frame(data: bytes) -> None:
    out = parse_frame(data)
    assert isinstance(out, Request) or out["error"]["code"] in (-32700, -32600)


def test_cover_calibration_closes_then_opens() -> None:
    dev = build("plus2pm-cover", booted_at=T0)
    dev.call("Cover.GoToPosition", {"id": 0, "pos": 50}, T0)
    assert dev.status(T0 + 10)["cover:0"]["current_pos"] == 50
    assert dev.call("Cover.Calibrate", {"id": 0}, T0 + 10) is None
    assert dev.status(T0 + 15)["cover:0"]["state"] == "calibrating"  # closing 50 -> 0 takes 10 s
    with pytest.raises(RpcError) as err:
        dev.call("Cover.Open", {"id": 0}, T0 + 15)
    assert err.value.code == -109
    with pytest.raises(RpcError):
        dev.call("Cover.Calibrate", {"id": 0}, T0 + 15)
    rising = dev.status(T0 + 25)["cover:0"]  # 10 s closing, then 5 s of the 20 s opening leg
    assert (rising["state"], rising["current_pos"], rising["last_direction"]) == ("calibrating", 25, "open")
    done = dev.status(T0 + 60)["cover:0"]
    assert (done["state"], done["current_pos"]) == ("open", 100)
    assert dev.call("Cover.Calibrate", {"id": 0}, T0 + 60) is None
    dev.call("Cover.Stop", {"id": 0}, T0 + 61)  # a stop ends the calibration run
    assert dev.status(T0 + 100)["cover:0"]["state"] == "stopped"
    dev.call("Cover.Close", {"id": 0}, T0 + 100)
    assert dev.status(T0 + 200)["cover:0"]["state"] == "closed"


cover_steps = st.lists(st.tuples(
    st.floats(0, 40),
    st.sampled_from(["Cover.Open", "Cover.Close", "Cover.Stop", "Cover.GoToPosition", "Cover.Calibrate",
                     "Cover.GetStatus"]),
    st.integers(-10, 110)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(cover_steps)
def test_cover_stays_consistent_whatever_the_commands(steps: list[tuple[float, str, int]]) -> None:
    dev = build("plus2pm-cover", booted_at=T0)
    now = T0
    for gap, method, pos in steps:
        now += gap
        try:
            dev.call(method, {"id": 0, "pos": pos}, now)
        except RpcError as err:
            assert err.code in (-103, -109)
        status = dev.status(now)["cover:0"]
        assert 0 <= status["current_pos"] <= 100
        assert status["state"] in ("open", "closed", "opening", "closing", "stopped", "calibrating")
        assert ("target_pos" in status) == (status["state"] in ("opening", "closing", "calibrating"))
        assert (status["apower"] > 0) == ("target_pos" in status)
    settled = dev.status(now + 1000)["cover:0"]
    assert settled["state"] in ("open", "closed", "stopped") and "target_pos" not in settled
