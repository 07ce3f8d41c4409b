"""The Tasmota simulator's pure model: topics, commands, discovery payloads, energy over simulated time."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_sim.tasmota.model import Message, TasmotaDevice, dimmer, fill_topic, plug2

T0 = 1_800_000_000.0


def by_topic(messages: list[Message]) -> dict[str, object]:
    out: dict[str, object] = {}
    for m in messages:
        try:
            out[m.topic] = json.loads(m.payload)
        except ValueError:
            out[m.topic] = m.payload
    return out


def test_discovery_config_has_every_key_hatasmota_validates() -> None:
    dev = TasmotaDevice(plug2(), T0)
    config_msg, sensors_msg = dev.discovery(T0)
    assert config_msg.topic == "tasmota/discovery/5CCF7F0A1B01/config" and config_msg.retain
    config = json.loads(config_msg.payload)
    required = {"ip", "dn", "fn", "hn", "mac", "md", "ty", "if", "ofln", "onln", "state", "sw", "t", "ft", "tp",
                "rl", "swc", "swn", "btn", "so", "lk", "lt_st", "bat", "dslp", "sho", "sht", "ver"}
    assert required <= set(config)
    assert config["mac"] == "5CCF7F0A1B01" and config["ver"] == 1 and config["rl"][:3] == [1, 1, 0]
    assert set(config["so"]) >= {"11", "13", "17", "20", "30", "68", "73", "82"}
    sensors = json.loads(sensors_msg.payload)
    assert sensors["ver"] == 1 and set(sensors["sn"]["ENERGY"]) >= {"Power", "Voltage", "Current", "Total", "Today"}


def test_dimmer_is_a_single_channel_light() -> None:
    config = json.loads(TasmotaDevice(dimmer(), T0).discovery(T0)[0].payload)
    assert config["rl"][:2] == [2, 0] and config["lt_st"] == 1


@pytest.mark.parametrize(("payload", "expected"), [
    ("ON", "ON"), ("on", "ON"), ("1", "ON"), ("true", "ON"), ("OFF", "OFF"), ("0", "OFF"),
    ("TOGGLE", "ON"), ("2", "ON"), ("", "OFF"), ("nonsense", "OFF"),
])
def test_power_payloads(payload: str, expected: str) -> None:
    dev = TasmotaDevice(plug2(), T0)
    out = by_topic(dev.handle("Power2", payload, T0))
    assert out == {"stat/tasmota_0A1B01/RESULT": {"POWER2": expected}, "stat/tasmota_0A1B01/POWER2": expected}


def test_single_relay_uses_the_bare_power_key() -> None:
    dev = TasmotaDevice(dimmer(), T0)
    assert by_topic(dev.handle("POWER1", "ON", T0))["stat/tasmota_0A1B02/POWER"] == "ON"
    assert by_topic(dev.handle("Power", "", T0))["stat/tasmota_0A1B02/RESULT"] == {"POWER": "ON"}


def test_dimmer_links_power_and_clamps() -> None:
    dev = TasmotaDevice(dimmer(), T0)
    result = by_topic(dev.handle("Backlog", "NoDelay;Dimmer 40", T0))["stat/tasmota_0A1B02/RESULT"]
    assert result["POWER"] == "ON" and result["Dimmer"] == 40
    assert by_topic(dev.handle("Dimmer", "250", T0))["stat/tasmota_0A1B02/RESULT"]["Dimmer"] == 100
    assert by_topic(dev.handle("Dimmer", "-", T0))["stat/tasmota_0A1B02/RESULT"]["Dimmer"] == 90
    off = by_topic(dev.handle("Dimmer", "0", T0))["stat/tasmota_0A1B02/RESULT"]
    assert off["POWER"] == "OFF" and off["Dimmer"] == 90
    assert by_topic(dev.handle("Dimmer", "abc", T0))["stat/tasmota_0A1B02/RESULT"]["Dimmer"] == 90


def test_unknown_and_bad_commands() -> None:
    dev = TasmotaDevice(plug2(), T0)
    unknown = {"stat/tasmota_0A1B01/RESULT": {"Command": "Unknown"}}
    assert by_topic(dev.handle("Power3", "ON", T0)) == unknown
    assert by_topic(dev.handle("Dimmer", "50", T0)) == unknown  # a plug has no light
    assert "Status" in by_topic(dev.handle("Status", "xyz", T0))["stat/tasmota_0A1B01/STATUS"]  # type: ignore[operator]
    assert by_topic(dev.handle("Status", "42", T0)) == {"stat/tasmota_0A1B01/RESULT": {"Command": "Error"}}
    assert dev.handle("Power1", b"x" * 5000, T0) == []  # over the MQTT buffer: dropped
    assert by_topic(dev.handle("Power1", b"\xff\xfe", T0))["stat/tasmota_0A1B01/POWER1"] == "OFF"


def test_status_answers_hatasmota_polls() -> None:
    dev = TasmotaDevice(plug2(), T0)
    for n, key in ((1, "StatusPRM"), (2, "StatusFWR"), (5, "StatusNET"), (10, "StatusSNS"), (11, "StatusSTS")):
        out = by_topic(dev.handle("STATUS", str(n), T0))
        assert key in out[f"stat/tasmota_0A1B01/STATUS{n}"]  # type: ignore[operator]
    everything = by_topic(dev.handle("Status", "0", T0))["stat/tasmota_0A1B01/STATUS0"]
    assert {"Status", "StatusPRM", "StatusFWR", "StatusNET", "StatusSNS", "StatusSTS"} <= set(everything)  # type: ignore[arg-type]
    state = by_topic(dev.handle("State", "", T0))["stat/tasmota_0A1B01/RESULT"]
    assert state["POWER1"] == "OFF" and state["POWER2"] == "OFF" and "Wifi" in state  # type: ignore[index]


def test_energy_accumulates_over_simulated_time() -> None:
    dev = TasmotaDevice(plug2(), T0)
    dev.handle("Power2", "ON", T0)  # 1200 W
    sensor = by_topic(dev.telemetry(T0 + 1800))["tele/tasmota_0A1B01/SENSOR"]["ENERGY"]  # type: ignore[index]
    assert sensor["Power"] == 1200 and sensor["Total"] == pytest.approx(0.6) and sensor["Period"] == 600
    assert sensor["Current"] == pytest.approx(1200 / 230, abs=0.001)
    again = by_topic(dev.telemetry(T0 + 1800))["tele/tasmota_0A1B01/SENSOR"]["ENERGY"]  # type: ignore[index]
    assert again["Period"] == 0 and again["Total"] == pytest.approx(0.6)


def test_full_topic_patterns() -> None:
    assert fill_topic("%prefix%/%topic%/", "cmnd", "plug", "h", "AABBCCDDEEFF") == "cmnd/plug/"
    assert fill_topic("%topic%/%prefix%", "stat", "plug", "h", "AABBCCDDEEFF") == "plug/stat/"
    assert fill_topic("home/%hostname%/%id%/%prefix%/", "tele", "t", "host", "AABBCCDDEEFF") == "home/host/DDEEFF/tele/"
    dev = TasmotaDevice(plug2(), T0)
    assert dev.command_of("cmnd/tasmota_0A1B01/Power1") == "Power1"
    assert dev.command_of("cmnd/tasmotas/Power1") == "Power1"  # the group topic
    assert dev.command_of("cmnd/other/Power1") is None
    assert dev.command_of("cmnd/tasmota_0A1B01/") is None


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from([plug2, dimmer]),
       command=st.sampled_from(["Power", "POWER1", "power2", "Power3", "Dimmer", "State", "Status", "Backlog",
                                "Backlog0", "Nope", ""]) | st.text(max_size=12),
       payload=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
@example(model=dimmer, command="Dimmer", payload=b"INF")  # float("INF") once escaped as OverflowError
@example(model=dimmer, command="Dimmer", payload=b"-inf")
def test_any_command_gets_messages_never_an_exception(model: object, command: str, payload: bytes) -> None:
    dev = TasmotaDevice(model(), T0)  # type: ignore[operator]
    for m in dev.handle(command, payload, T0 + 1):
        assert m.topic.startswith(("stat/", "tele/")) and isinstance(m.payload, str)
    json.dumps(dev.state_payload(T0 + 2))


@pytest.mark.parametrize(("arg", "period"), [("", 300), ("0", 0), ("1", 300), ("5", 10), ("60", 60), ("9999", 3600),
                                             ("x", 300)])
def test_teleperiod_command(arg: str, period: int) -> None:
    dev = TasmotaDevice(plug2(), T0)
    assert by_topic(dev.handle("TelePeriod", arg, T0)) == {"stat/tasmota_0A1B01/RESULT": {"TelePeriod": period}}
    assert dev.teleperiod == period
