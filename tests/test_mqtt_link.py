"""The hub's MQTT link (paho on the asyncio loop) against Mosquitto, and against a scripted broker."""

from __future__ import annotations

import asyncio
import logging
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from hub.broker import Broker
from hub.driver import BrokerUnavailable
from hub.mqtt import MqttLink


def independent_client(broker: Broker) -> paho.Client:
    """A plain paho client with its own network thread: nothing shared with the link's code."""
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)
    c.connect(broker.host, broker.port or 0)
    c.loop_start()
    return c


@pytest.fixture
async def link(broker: Broker) -> AsyncIterator[MqttLink]:
    link = MqttLink(broker.host, broker.port or 0, client_id="link-test", will_topic="hub/bridge/state",
                    keepalive=5)
    yield link
    await link.stop()


async def test_flood_arrives_complete_and_in_order(broker: Broker, link: MqttLink) -> None:
    count = 20_000
    got: list[int] = []
    done = asyncio.Event()
    tasks_seen: set[int] = set()

    def on_value(topic: str, payload: bytes, retain: bool) -> None:
        if topic.endswith("/end"):
            done.set()
            return
        got.append(int(payload))
        if len(got) % 1000 == 1:
            tasks_seen.add(len(asyncio.all_tasks()))

    link.subscribe("flood/#", on_value)
    await link.start()
    await link.wait_connected(10)
    pub = independent_client(broker)
    try:
        def send() -> None:
            for i in range(count):
                pub.publish("flood/value", str(i), qos=0)
            pub.publish("flood/end", "", qos=1).wait_for_publish(30)

        await asyncio.to_thread(send)
        async with asyncio.timeout(60):  # no wait_for: it would add a task of its own
            await done.wait()
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert got == list(range(count))  # every message, once, in order
    assert link.received == count + 1
    assert len(tasks_seen) == 1  # no task per message: as many tasks at the end as at the start


async def test_reconnects_and_resubscribes_after_a_broker_restart(broker: Broker, link: MqttLink) -> None:
    lost = asyncio.Event()
    link.on_disconnect = lost.set
    arrived: asyncio.Queue[bytes] = asyncio.Queue()
    link.subscribe("restart/t", lambda t, p, r: arrived.put_nowait(p))
    await link.start()
    await link.wait_connected(10)
    broker.kill()
    await asyncio.wait_for(lost.wait(), 10)
    assert not link.connected
    with pytest.raises(BrokerUnavailable):
        await link.publish("restart/t", "while down")
    await asyncio.to_thread(broker.start)
    await link.wait_connected(20)
    assert link.connects == 2
    pub = independent_client(broker)
    try:
        pub.publish("restart/t", "after", qos=1).wait_for_publish(10)
        assert await asyncio.wait_for(arrived.get(), 10) == b"after"  # the subscription came back
    finally:
        pub.loop_stop()
        pub.disconnect()


async def test_online_on_connect_offline_on_stop(broker: Broker, link: MqttLink) -> None:
    watcher = independent_client(broker)
    states: asyncio.Queue[bytes] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    watcher.on_message = lambda c, u, m: loop.call_soon_threadsafe(states.put_nowait, m.payload)
    subscribed = asyncio.Event()
    watcher.on_subscribe = lambda *a: loop.call_soon_threadsafe(subscribed.set)
    watcher.subscribe("hub/bridge/state", qos=1)
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        await link.start()
        assert await asyncio.wait_for(states.get(), 10) == b"online"
        await link.stop()
        assert await asyncio.wait_for(states.get(), 10) == b"offline"
    finally:
        watcher.loop_stop()
        watcher.disconnect()


LINK_PROCESS = """
import asyncio, sys
from hub.mqtt import MqttLink
async def main(port):
    link = MqttLink("127.0.0.1", port, client_id="doomed", will_topic="hub/bridge/state", keepalive=5)
    await link.start()
    await link.wait_connected(10)
    print("connected", flush=True)
    await asyncio.sleep(60)  # until killed
asyncio.run(main(int(sys.argv[1])))
"""


async def test_last_will_says_offline_when_the_hub_dies(broker: Broker) -> None:
    watcher = independent_client(broker)
    states: asyncio.Queue[bytes] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    watcher.on_message = lambda c, u, m: loop.call_soon_threadsafe(states.put_nowait, m.payload)
    subscribed = asyncio.Event()
    watcher.on_subscribe = lambda *a: loop.call_soon_threadsafe(subscribed.set)
    watcher.subscribe("hub/bridge/state", qos=1)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", LINK_PROCESS, str(broker.port),
                                                stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"connected\n"
        assert await asyncio.wait_for(states.get(), 10) == b"online"
        proc.kill()  # no DISCONNECT: the broker publishes the will
        await proc.wait()
        assert await asyncio.wait_for(states.get(), 10) == b"offline"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        watcher.loop_stop()
        watcher.disconnect()


# -- a scripted broker: holds acknowledgements so the test decides when they arrive ----------


class ScriptedBroker:
    """Just enough MQTT 3.1.1 (CONNACK, SUBACK, PUBACK) on loopback, each ack released by the test."""

    def __init__(self) -> None:
        self.packets: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.writer: asyncio.StreamWriter | None = None
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.writer is not None:
            self.writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        try:
            while True:
                first = (await reader.readexactly(1))[0]
                length, shift = 0, 0
                while True:
                    b = (await reader.readexactly(1))[0]
                    length |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                body = await reader.readexactly(length)
                if first >> 4 == 1:  # CONNECT: accept at once
                    writer.write(b"\x20\x02\x00\x00")
                await self.packets.put((first, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def next(self, kind: int) -> bytes:
        """The body of the next packet of this type (3 PUBLISH, 8 SUBSCRIBE), skipping others."""
        while True:
            first, body = await asyncio.wait_for(self.packets.get(), 10)
            if first >> 4 == kind:
                return body

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedBroker]:
    b = ScriptedBroker()
    await b.start()
    yield b
    await b.stop()


def publish_mid(body: bytes) -> bytes:
    """The packet id of a QoS 1 PUBLISH body (after the topic)."""
    (topic_len,) = struct.unpack(">H", body[:2])
    return body[2 + topic_len:4 + topic_len]


async def connect_through(scripted: ScriptedBroker, link: MqttLink) -> None:
    await link.start()
    will = await scripted.next(3)  # the link announces itself: retained `online`, QoS 1
    scripted.send(b"\x40\x02" + publish_mid(will))
    await link.wait_connected(10)


class Warnings(logging.Handler):
    """Wakes the test when the link logs a warning."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.arrived.set()


async def test_qos1_publish_completes_only_on_its_puback(scripted: ScriptedBroker) -> None:
    link = MqttLink("127.0.0.1", scripted.port, client_id="scripted", will_topic="hub/bridge/state")
    try:
        await connect_through(scripted, link)
        first = asyncio.ensure_future(link.publish("a/1", "x", qos=1))
        first_mid = publish_mid(await scripted.next(3))
        second = asyncio.ensure_future(link.publish("a/2", "y", qos=1))
        second_mid = publish_mid(await scripted.next(3))
        scripted.send(b"\x40\x02" + second_mid)
        await asyncio.wait_for(second, 10)
        assert not first.done()  # the link handled a PUBACK, but not this one's
        scripted.send(b"\x40\x02" + first_mid)
        await asyncio.wait_for(first, 10)
    finally:
        await link.stop()


async def test_concurrent_subscribes_pair_with_their_own_subacks(scripted: ScriptedBroker) -> None:
    link = MqttLink("127.0.0.1", scripted.port, client_id="scripted", will_topic="hub/bridge/state")
    warnings = Warnings()
    logging.getLogger("hub.mqtt").addHandler(warnings)
    try:
        await connect_through(scripted, link)
        link.subscribe("one/#", lambda *a: None)
        link.subscribe("two/#", lambda *a: None)
        first = await scripted.next(8)
        second = await scripted.next(8)  # both in flight at once
        assert b"one/#" in first and b"two/#" in second
        # answered in reverse order; the broker refuses the first
        scripted.send(b"\x90\x03" + second[:2] + b"\x00")
        scripted.send(b"\x90\x03" + first[:2] + b"\x80")
        await asyncio.wait_for(warnings.arrived.wait(), 10)
        assert len(warnings.messages) == 1 and warnings.messages[0].startswith("subscribe one/# failed")
    finally:
        logging.getLogger("hub.mqtt").removeHandler(warnings)
        await link.stop()


def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH (short enough for a one-byte remaining length)."""
    body = struct.pack(">H", len(topic)) + topic.encode() + payload
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


async def test_packets_coalesced_or_split_in_the_stream_all_arrive_in_order(scripted: ScriptedBroker) -> None:
    # More packets in one write than the link reads per wake-up (the rest wait in its read
    # buffer, which the socket never signals again), ending in a packet cut inside its body.
    link = MqttLink("127.0.0.1", scripted.port, client_id="scripted", will_topic="hub/bridge/state")
    count = 2500
    got: list[int] = []
    reached = {count: asyncio.Event(), count + 1: asyncio.Event()}

    def on_value(topic: str, payload: bytes, retain: bool) -> None:
        got.append(int(payload))
        if len(got) in reached:
            reached[len(got)].set()

    try:
        link.subscribe("v/#", on_value)
        await link.start()
        subscribe = await scripted.next(8)  # subscriptions first, then `online`
        scripted.send(b"\x90\x03" + subscribe[:2] + b"\x00")
        will = await scripted.next(3)
        scripted.send(b"\x40\x02" + publish_mid(will))
        await link.wait_connected(10)
        tail = publish_packet("v/x", str(count).encode())
        scripted.send(b"".join(publish_packet("v/x", str(i).encode()) for i in range(count)) + tail[:5])
        await asyncio.wait_for(reached[count].wait(), 10)
        scripted.send(tail[5:])
        await asyncio.wait_for(reached[count + 1].wait(), 10)
    finally:
        await link.stop()
    assert got == list(range(count + 1))
