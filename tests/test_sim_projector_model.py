"""The simulated projector's state machine, driven by a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from firmware_sim.projector.model import (
    BadParameter,
    Change,
    ErrorKind,
    FakeClock,
    Failure,
    Level,
    Power,
    ProjectorConfig,
    ProjectorModel,
    SavedState,
    Unavailable,
    default_mac,
    default_serial,
)


def make(clock: FakeClock, **kw: object) -> tuple[ProjectorModel, list[Change]]:
    config = ProjectorConfig(warmup=20, cooldown=10, **kw)  # type: ignore[arg-type]
    model = ProjectorModel(config, clock)
    changes: list[Change] = []
    model.subscribe(changes.append)
    return model, changes


def test_power_on_warms_up_then_is_on() -> None:
    clock = FakeClock()
    model, changes = make(clock)
    assert model.power is Power.OFF
    model.power_on()
    assert model.power is Power.WARMING
    clock.advance(19.9)
    assert model.power is Power.WARMING
    model.power_on()  # again while warming: accepted, nothing changes
    clock.advance(0.2)
    assert model.power is Power.ON
    assert [c for c in changes if c.body == "POWR"] == [Change("POWR", "3"), Change("POWR", "1")]


def test_power_off_cools_down_then_is_off_and_refuses_power_on_while_cooling() -> None:
    clock = FakeClock()
    model, changes = make(clock)
    model.power_on()
    clock.advance(20)
    model.power_off()
    assert model.power is Power.COOLING
    with pytest.raises(Unavailable):
        model.power_on()
    clock.advance(10)
    assert model.power is Power.OFF
    assert [c.value for c in changes if c.body == "POWR"] == ["3", "1", "2", "0"]


def test_power_off_during_warm_up_is_unavailable_and_off_when_off_is_fine() -> None:
    clock = FakeClock()
    model, _ = make(clock)
    model.power_off()
    model.power_on()
    with pytest.raises(Unavailable):
        model.power_off()


def test_next_deadline_is_when_the_phase_ends() -> None:
    clock = FakeClock(now=50.0)
    model, _ = make(clock)
    assert model.next_deadline() is None
    model.power_on()
    assert model.next_deadline() == pytest.approx(70.0)


def test_lamp_and_filter_hours_grow_only_while_lit_scaled_by_speed() -> None:
    clock = FakeClock()
    model, _ = make(clock, speed=60.0)
    clock.advance(3600)
    assert model.lamp_hours == 0  # off: the lamp does not burn
    model.power_on()
    clock.advance(20 + 40 * 60)  # warm-up + 40 real minutes, lit at speed 60
    assert model.power is Power.ON
    assert model.lamp_hours == 40  # 2420 s * 60 = 145200 s = 40.3 h
    assert model.filter_hours == 40
    model.power_off()
    clock.advance(10_000)
    assert model.lamp_hours == 40


def test_lamp_warning_past_lamp_life() -> None:
    clock = FakeClock()
    model = ProjectorModel(ProjectorConfig(warmup=0, lamp_life_hours=1), clock)
    assert model.error_digits() == "000000"
    model.power_on()
    clock.advance(3600)
    assert model.error_digits() == "010000"


def test_inputs_mute_freeze_and_volume_need_the_projector_on() -> None:
    clock = FakeClock()
    model, changes = make(clock)
    for action in (lambda: model.select_input("31"), lambda: model.set_mute(video=True),
                   lambda: model.set_freeze(True), lambda: model.step_volume("speaker", True)):
        with pytest.raises(Unavailable):
            action()
    model.power_on()
    with pytest.raises(Unavailable):
        model.select_input("31")  # warming up
    clock.advance(20)
    model.select_input("31")
    model.set_mute(video=True)
    model.set_freeze(True)
    assert (model.input, model.mute, model.frozen) == ("31", (True, False), True)
    assert Change("INPT", "31") in changes
    with pytest.raises(BadParameter):
        model.select_input("19")


def test_volume_steps_and_clamps_at_both_ends() -> None:
    clock = FakeClock()
    model = ProjectorModel(ProjectorConfig(warmup=0, volume_max=3), clock)
    model.power_on()
    for _ in range(10):
        model.step_volume("speaker", True)
    assert model.speaker_volume == 3
    for _ in range(10):
        model.step_volume("microphone", False)
    assert model.microphone_volume == 0


def test_lamp_fault_shuts_the_lamp_down_and_refuses_power_on() -> None:
    clock = FakeClock()
    model, changes = make(clock)
    model.power_on()
    clock.advance(20)
    model.set_error(ErrorKind.LAMP, Level.ERROR)
    assert model.power is Power.COOLING
    assert model.error_digits() == "020000"
    with pytest.raises(Failure):
        model.power_on()
    clock.advance(10)
    model.set_error(ErrorKind.LAMP, Level.OK)
    model.power_on()
    assert model.power is Power.WARMING
    assert Change("ERST", "020000") in changes and Change("ERST", "000000") in changes


def test_filter_warning_and_other_error_do_not_stop_the_lamp() -> None:
    clock = FakeClock()
    model, _ = make(clock)
    model.power_on()
    clock.advance(20)
    model.set_error(ErrorKind.FILTER, Level.WARNING)
    model.set_error(ErrorKind.OTHER, Level.ERROR)
    assert model.power is Power.ON
    assert model.error_digits() == "000012"
    model.clear_errors()
    assert model.error_digits() == "000000"


def test_saved_state_restores_power_input_and_hours() -> None:
    clock = FakeClock()
    model, _ = make(clock)
    model.power_on()
    clock.advance(20 + 7200)
    model.select_input("33")
    saved = SavedState.from_json(model.saved_state("127.0.0.1").to_json())
    again = ProjectorModel(ProjectorConfig(), FakeClock(), saved)
    assert (again.power, again.input, again.lamp_hours) == (Power.ON, "33", 2)
    assert saved.controller == "127.0.0.1"


def test_a_unit_that_was_cooling_comes_back_off() -> None:
    saved = SavedState(power=2, input="31")
    assert ProjectorModel(ProjectorConfig(), FakeClock(), saved).power is Power.OFF


@pytest.mark.parametrize("data", [None, [], {"power": 7}, {"power": True, "input": 3},
                                  {"lamp_seconds": -1}, {"filter_seconds": "x"},
                                  {"controller": 5}])
def test_saved_state_rejects_garbage(data: object) -> None:
    with pytest.raises(ValueError):
        SavedState.from_json(data)


def test_identity_defaults_are_deterministic_and_well_formed() -> None:
    config = ProjectorConfig(name="Living room").resolved()
    assert config.mac == default_mac("Living room") == ProjectorConfig(name="Living room").resolved().mac
    assert config.serial == default_serial("Living room")
    first = int(config.mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast
    assert ProjectorConfig(name="Attic").resolved().mac != config.mac


def test_firmware_sim_projector_imports_neither_hub_nor_devices() -> None:
    root = Path(__file__).resolve().parents[1] / "firmware_sim" / "projector"
    for path in root.glob("*.py"):
        name = path.name
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            for mod in mods:
                assert mod.split(".")[0] not in ("hub", "devices"), f"{name} imports {mod}"
