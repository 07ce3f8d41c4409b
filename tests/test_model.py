"""Exposes: the one declaration commands are validated against."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.model import (Access, Action, Binary, Color, Enum, InvalidCommand, Numeric, Text, expose_from_json,
                       validate_command)

LIGHT = (
    Binary(name="on", access=Access.STATE | Access.SET),
    Numeric(name="brightness", access=Access.STATE | Access.SET, min=0, max=100, step=1, integer=True, unit="%"),
    Numeric(name="target", access=Access.STATE | Access.SET, min=5, max=30, step=0.5),
    Enum(name="mode", access=Access.STATE | Access.SET, values=("off", "heat")),
    Action(name="action", values=("open", "close")),
    Color(name="color", access=Access.STATE | Access.SET),
    Text(name="url", access=Access.STATE | Access.SET, max_length=10),
    Numeric(name="power", access=Access.STATE, unit="W"),
)


def test_valid_command_is_normalised() -> None:
    assert validate_command(LIGHT, {"on": True, "brightness": 40.0, "target": 21.5, "color": "#FFAA00"}) == {
        "on": True, "brightness": 40, "target": 21.5, "color": "#ffaa00"}


@pytest.mark.parametrize("payload,field,rule", [
    ({"on": 1}, "on", "must be true or false"),
    ({"brightness": 101}, "brightness", "must be <= 100"),
    ({"brightness": -1}, "brightness", "must be >= 0"),
    ({"brightness": 4.5}, "brightness", "must be a whole number"),
    ({"brightness": True}, "brightness", "must be a number"),
    ({"brightness": float("nan")}, "brightness", "must be a number"),
    ({"target": 21.3}, "target", "must be a multiple of 0.5 from 5"),
    ({"mode": "cool"}, "mode", "must be one of off, heat"),
    ({"action": "stop"}, "action", "must be one of open, close"),
    ({"color": "red"}, "color", 'must be a colour like "#ff8800"'),
    ({"url": "x" * 11}, "url", "must be at most 10 characters"),
    ({"power": 3}, "power", "is read-only"),
    ({"nope": 1}, "nope", "unknown property; settable ones are: on, brightness, target, mode, action, color, url"),
    ([], "body", "must be a JSON object of property: value"),
    ({}, "body", "must name at least one property"),
])
def test_invalid_commands_name_field_and_rule(payload, field, rule) -> None:
    with pytest.raises(InvalidCommand) as e:
        validate_command(LIGHT, payload)
    assert (e.value.field, e.value.rule) == (field, rule)


def test_access_is_a_flag() -> None:
    assert Access.STATE | Access.SET == 3 and isinstance(LIGHT[0].access, Access)
    assert LIGHT[4].access == Access.SET  # actions are write-only


@pytest.mark.parametrize("expose", LIGHT)
def test_json_round_trip(expose) -> None:
    """The registry stores exposes as JSON; what comes back validates the same way."""
    back = expose_from_json(expose.to_json())
    assert back.to_json() == expose.to_json() and type(back) is type(expose)


@given(st.dictionaries(st.text(max_size=12), st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(), max_size=3)), max_size=5))
def test_any_payload_is_accepted_or_refused_cleanly(payload) -> None:
    try:
        out = validate_command(LIGHT, payload)
    except InvalidCommand as e:
        assert e.field in payload or e.field == "body"
    else:
        assert set(out) == set(payload)
