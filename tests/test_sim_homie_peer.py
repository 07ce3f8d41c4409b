"""firmware_sim against an independent Homie 5 implementation: ebus-sdk (Controller and payload rules).

ebus-sdk implements the Homie v5.0.0 convention on its own (paho, threads). Two checks:
- its Controller discovers the simulated house, reads values and `$target`s, and drives a device;
- differential testing of the payload codec: ebus-sdk's `/set` payload parser and ours must agree
  on what is valid and what it means. Known, deliberate difference: colours. The project's wire
  contract uses `r,g,b`; the v5.0.0 spec's "Color" section uses `rgb,r,g,b`. We publish the
  contract form and accept both, so for colours only the spec form is compared.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from ebus_sdk.homie import Controller
from ebus_sdk.homie import _parse_set_payload as ebus_parse  # pinned version; no public equivalent
from hypothesis import example, given, settings
from hypothesis import strategies as st

from firmware_sim.homie.devices import MODELS
from firmware_sim.homie.house import House, parse_house
from firmware_sim.homie.wire import InvalidValue, Property
from firmware_sim.projector.player import PlayerModel
from hub.broker import Broker

pytestmark = pytest.mark.filterwarnings("ignore:Callback API version 1:DeprecationWarning")  # inside ebus-sdk

PROPS = sorted({p for m in [*MODELS.values(), PlayerModel] for n in m().nodes() for p in n.properties},
               key=lambda p: (p.datatype, p.format or "", p.id))
SHORT_TEXT = st.text(alphabet="0123456789-.eE+ ,\x00\nrgbhsvtruefalsonpy", max_size=9)


def ours(prop: Property, text: str) -> tuple[bool, object]:
    try:
        return True, prop.decode(text.encode())
    except InvalidValue:
        return False, None


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(PROPS), SHORT_TEXT)
@example(next(p for p in PROPS if p.datatype == "integer"), "5\n")
@example(next(p for p in PROPS if p.datatype == "float" and p.format == "5:30:0.5"), "21.25")
@example(next(p for p in PROPS if p.datatype == "float"), "1e+3")
@example(next(p for p in PROPS if p.datatype == "string"), "\x00")
def test_set_payload_rules_agree_with_ebus_sdk(prop: Property, text: str) -> None:
    if prop.datatype == "color" and not text.startswith(f"{prop.format},"):
        text = f"{prop.format},{text}"  # compare the spec form only (see module docstring)
    if prop.datatype == "string" and text == "":
        return  # zero-length: ebus-sdk takes it as ""; we refuse it (it would clear a retained topic)
    accepted, value = ours(prop, text)
    theirs, problem = ebus_parse(text, prop.datatype, prop.format, None)
    assert accepted == (problem is None), f"{prop.id} {prop.format!r} {text!r}: ours {accepted}, ebus {problem}"
    if not accepted:
        return
    if prop.datatype in ("integer", "float"):
        assert math.isclose(float(theirs), value, rel_tol=1e-12, abs_tol=1e-12)
    elif prop.datatype == "boolean":
        assert theirs == ("true" if value else "false")
    elif prop.datatype == "color":
        parts = [float(x) for x in theirs.split(",")[1:]]
        assert tuple(math.floor(x + 0.5) for x in parts) == value
    else:
        assert theirs == value


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_value_we_publish_is_valid_for_ebus_sdk(data: st.DataObject) -> None:
    prop = data.draw(st.sampled_from(PROPS))
    if prop.datatype == "boolean":
        value = data.draw(st.booleans())
    elif prop.datatype == "enum":
        value = data.draw(st.sampled_from(prop.enum_values))
    elif prop.datatype == "color":
        value = data.draw(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
    elif prop.datatype in ("integer", "float"):
        lo, hi, *step = [float(x) if x else None for x in (prop.format or ":").split(":")]
        lo = -1e6 if lo is None else lo
        hi = 1e6 if hi is None else hi
        if prop.datatype == "integer":
            value = data.draw(st.integers(int(lo), int(hi)))
        else:
            value = data.draw(st.floats(lo, hi))
            if step and step[0]:
                value = lo + math.floor((value - lo) / step[0] + 0.5) * step[0]
    else:
        value = data.draw(st.text(max_size=20).filter(lambda t: "\x00" not in t))
    payload = prop.encode(value)
    _, problem = ebus_parse(payload, prop.datatype, prop.format, None)
    assert problem is None, f"{prop.id}: we publish {payload!r}, ebus-sdk says {problem}"


HOUSE = """
[[device]]
id = "peer-lamp"
name = "Peer lamp"
type = "light"

[[device]]
id = "peer-blind"
name = "Peer blind"
type = "cover"
params = { speed = 50.0 }

[[device]]
id = "peer-heating"
name = "Peer thermostat"
type = "thermostat"
"""


@pytest.fixture
def controller(broker: Broker):
    c = Controller(mqtt_cfg={"host": broker.host, "port": broker.port}, homie_domain="homie", auto_start=True)
    c.set_on_device_discovered_callback(_wake_waiters)
    c.set_on_device_state_changed_callback(_wake_waiters)
    c.set_on_property_changed_callback(_wake_waiters)
    try:
        yield c
    finally:
        c.stop()


_woken: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []


def _wake_waiters(*_: object) -> None:
    """ebus-sdk callbacks run on paho's thread: hand the wake-up to each waiter's loop."""
    for loop, event in list(_woken):
        loop.call_soon_threadsafe(event.set)


async def until(check, timeout: float = 15.0) -> None:
    """Wait for a condition on the controller's state, re-checked whenever it reports a change.

    Not every update has a callback (a `$target` has none), so a check also runs every 0.5 s.
    """
    event = asyncio.Event()
    waiter = (asyncio.get_running_loop(), event)
    _woken.append(waiter)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        while not check():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError("condition not reached in time")
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), min(0.5, left))
            except asyncio.TimeoutError:
                pass
    finally:
        _woken.remove(waiter)


async def test_ebus_controller_discovers_and_drives_the_house(broker: Broker, tmp_path: Path,
                                                              controller: Controller) -> None:
    house = House(parse_house(HOUSE), broker_url=broker.url, state_dir=tmp_path, mdns=False)
    await house.start()
    try:
        def described() -> bool:
            devices = controller.get_all_devices()
            return all(d in devices and devices[d].state == "ready" and devices[d].description
                       and devices[d].properties for d in ("peer-lamp", "peer-blind", "peer-heating"))
        await until(described)
        lamp = controller.get_device("peer-lamp")
        assert lamp.description["nodes"]["light"]["properties"]["brightness"]["format"] == "0:100"
        await until(lambda: lamp.get_property("light", "color") is not None)
        blind = controller.get_device("peer-blind")
        await until(lambda: blind.get_property_target("cover", "position") == "0")

        assert controller.set_property("peer-lamp", "light", "brightness", "55")
        await until(lambda: lamp.get_property("light", "brightness") == "55")
        assert controller.set_property("peer-blind", "cover", "position", "100")
        await until(lambda: blind.get_property_target("cover", "position") == "100")
        await until(lambda: blind.get_property("cover", "state") == "open")
        assert blind.get_property("cover", "position") == "100"
    finally:
        await house.stop()
    await until(lambda: controller.get_device("peer-lamp").state == "disconnected")
