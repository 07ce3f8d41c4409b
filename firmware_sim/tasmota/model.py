"""A Tasmota device as a pure object: commands in, MQTT messages out; native discovery.

Topics follow Tasmota's FullTopic (default `%prefix%/%topic%/`, prefixes cmnd/stat/tele).
Commands (tasmota.github.io/docs/Commands): `Power<n>` with ON/OFF/TOGGLE (1/0/2, true/false,
empty = query), `Dimmer` 0..100 (+/- step 10), `State`, `Status <n>`, `Backlog a;b`. Answers go to
`stat/<topic>/RESULT` (SetOption4 0) and `stat/<topic>/POWER<n>`; unknown commands get
`{"Command":"Unknown"}`, as the firmware answers. Discovery payloads follow
`xdrv_12_discovery.ino` (key order and meaning) and hatasmota's TASMOTA_DISCOVERY_SCHEMA.
Every method takes `now` (simulated epoch seconds); nothing here reads a clock.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

DISCOVERY_PREFIX = "tasmota/discovery"
ONLINE, OFFLINE = "Online", "Offline"  # MQTT_LWT_ONLINE / MQTT_LWT_OFFLINE
STATE_TEXT = ("OFF", "ON", "TOGGLE", "HOLD")
MAX_SLOTS = 8  # relays, friendly names, switches and buttons of an ESP8266 build
MAX_PAYLOAD = 1024  # bigger command payloads are dropped, like the firmware's MQTT buffer does
MAX_BACKLOG = 30


@dataclass(frozen=True)
class Message:
    """One MQTT publication."""

    topic: str
    payload: str
    retain: bool = False


@dataclass(frozen=True)
class TasmotaConfig:
    """Identity and topic settings (`Topic`, `FullTopic`, `Prefix1..3`, `GroupTopic`)."""

    mac: str  # 12 upper-case hex digits, no colons (NetworkUniqueId)
    module: str
    relays: int
    dimmer: bool = False
    energy: bool = False
    loads_w: tuple[float, ...] = ()
    device_name: str = "Tasmota"
    friendly_names: tuple[str, ...] = ()
    topic: str = ""
    full_topic: str = "%prefix%/%topic%/"
    prefixes: tuple[str, str, str] = ("cmnd", "stat", "tele")
    group_topic: str = "tasmotas"
    version: str = "14.3.0"
    ip: str = "127.0.0.1"

    @property
    def mqtt_topic(self) -> str:
        return self.topic or f"tasmota_{self.mac[-6:]}"

    @property
    def hostname(self) -> str:
        return f"tasmota-{self.mac[-6:]}-{int(self.mac[-4:], 16) & 0x0FFF:04d}"

    @property
    def client_id(self) -> str:
        return f"DVES_{self.mac[-6:]}"


def fill_topic(full_topic: str, prefix: str, topic: str, hostname: str, mac: str) -> str:
    """FullTopic with its %prefix%, %topic%, %hostname% and %id% filled in, ending in `/`."""
    out = (full_topic.replace("%prefix%", prefix).replace("%topic%", topic)
           .replace("%hostname%", hostname).replace("%id%", mac[-6:]))
    return out if out.endswith("/") else out + "/"


def _on_off(text: str) -> int | None:
    """Power argument -> 0 off, 1 on, 2 toggle; None for a query (empty or not understood)."""
    word = text.strip().lower()
    return {"0": 0, "off": 0, "false": 0, "1": 1, "on": 1, "true": 1, "2": 2, "toggle": 2}.get(word)


@dataclass
class EnergyMeter:
    """Energy totals in kWh, integrated over simulated time (ENERGY in tele/SENSOR)."""

    started: float
    voltage: float = 230.0
    total_kwh: float = 0.0
    today_kwh: float = 0.0
    yesterday_kwh: float = 0.0
    period_wh: float = 0.0
    last: float = 0.0
    day: str = ""

    def advance(self, now: float, power_w: float) -> None:
        if not self.day:
            self.day, self.last = time.strftime("%Y-%m-%d", time.localtime(now)), now
            return
        if now > self.last:
            kwh = power_w * (now - self.last) / 3_600_000
            today = time.strftime("%Y-%m-%d", time.localtime(now))
            if today != self.day:  # midnight: Today becomes Yesterday
                self.yesterday_kwh, self.today_kwh, self.day = self.today_kwh, 0.0, today
            self.total_kwh += kwh
            self.today_kwh += kwh
            self.period_wh += kwh * 1000
            self.last = now


class TasmotaDevice:
    """Relays, an optional single-channel dimmer and an optional energy meter."""

    def __init__(self, config: TasmotaConfig, booted_at: float, teleperiod: int = 300) -> None:
        self.config = config
        self.booted_at = booted_at
        self.teleperiod = teleperiod  # seconds between tele/STATE+SENSOR; 0 = off
        self.power = [False] * config.relays
        self.dimmer = 100
        self.meter = EnergyMeter(started=booted_at) if config.energy else None
        self.mqtt_count = 0

    # -- topics ------------------------------------------------------------------------------

    def _base(self, prefix_index: int) -> str:
        c = self.config
        return fill_topic(c.full_topic, c.prefixes[prefix_index], c.mqtt_topic, c.hostname, c.mac)

    @property
    def command_topics(self) -> list[str]:
        """Subscriptions: own topic and group topic, one command level each."""
        c = self.config
        group = fill_topic(c.full_topic, c.prefixes[0], c.group_topic, c.hostname, c.mac)
        return [self._base(0) + "+", group + "+"]

    def command_of(self, topic: str) -> str | None:
        """The command a `cmnd` topic names (own or group topic), or None."""
        c = self.config
        for base in (self._base(0), fill_topic(c.full_topic, c.prefixes[0], c.group_topic, c.hostname, c.mac)):
            if topic.startswith(base) and "/" not in topic[len(base):] and topic[len(base):]:
                return topic[len(base):]
        return None

    def stat(self, name: str) -> str:
        return self._base(1) + name

    def tele(self, name: str) -> str:
        return self._base(2) + name

    @property
    def lwt_topic(self) -> str:
        return self.tele("LWT")

    # -- power keys -----------------------------------------------------------------------------

    def _power_key(self, index: int) -> str:
        return "POWER" if self.config.relays == 1 else f"POWER{index + 1}"

    def _power_json(self) -> dict[str, str]:
        return {self._power_key(i): STATE_TEXT[int(on)] for i, on in enumerate(self.power)}

    def _light_json(self) -> dict[str, Any]:
        return {"Dimmer": self.dimmer, "Fade": "OFF", "Speed": 1, "LedTable": "ON"} if self.config.dimmer else {}

    def load_w(self) -> float:
        loads = self.config.loads_w or (0.0,) * self.config.relays
        total = sum(w for w, on in zip(loads, self.power) if on)
        if self.config.dimmer and self.power and self.power[0]:
            total = total * self.dimmer / 100
        return total

    def advance(self, now: float) -> None:
        if self.meter is not None:
            self.meter.advance(now, self.load_w())

    # -- payloads ------------------------------------------------------------------------------

    def _time(self, now: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))

    def _uptime(self, now: float) -> tuple[str, int]:
        secs = int(max(0.0, now - self.booted_at))
        days, rest = divmod(secs, 86400)
        return f"{days}T{time.strftime('%H:%M:%S', time.gmtime(rest))}", secs

    def state_payload(self, now: float) -> dict[str, Any]:
        """What `tele/<t>/STATE` and the `State` command report."""
        uptime, secs = self._uptime(now)
        out: dict[str, Any] = {"Time": self._time(now), "Uptime": uptime, "UptimeSec": secs, "Heap": 26,
                               "SleepMode": "Dynamic", "Sleep": 50, "LoadAvg": 19, "MqttCount": self.mqtt_count}
        out.update(self._power_json())
        out.update(self._light_json())
        out["Wifi"] = {"AP": 1, "SSId": "house", "BSSId": "AA:BB:CC:DD:EE:FF", "Channel": 6, "Mode": "11n",
                       "RSSI": 84, "Signal": -58, "LinkCount": 1, "Downtime": "0T00:00:03"}
        return out

    def sensor_payload(self, now: float) -> dict[str, Any]:
        """What `tele/<t>/SENSOR` reports (and the discovery `sn`)."""
        out: dict[str, Any] = {"Time": self._time(now)}
        if self.meter is not None:
            self.advance(now)
            m, power = self.meter, self.load_w()
            apparent = round(power / 0.95) if power else 0
            out["ENERGY"] = {
                "TotalStartTime": self._time(m.started), "Total": round(m.total_kwh, 3),
                "Yesterday": round(m.yesterday_kwh, 3), "Today": round(m.today_kwh, 3),
                "Period": round(m.period_wh), "Power": round(power), "ApparentPower": apparent,
                "ReactivePower": round((apparent ** 2 - power ** 2) ** 0.5) if power else 0,
                "Factor": 0.95 if power else 0.0, "Voltage": round(m.voltage),
                "Current": round(power / m.voltage, 3)}
        return out

    def discovery(self, now: float) -> list[Message]:
        """The retained `tasmota/discovery/<MAC>/config` and `/sensors` messages."""
        c = self.config
        names = list(c.friendly_names[:MAX_SLOTS]) or [c.device_name]
        fn = [names[i] if i < len(names) and i < max(1, c.relays) else None for i in range(MAX_SLOTS)]
        rl = [(2 if c.dimmer and i == c.relays - 1 else 1) if i < c.relays else 0 for i in range(MAX_SLOTS)]
        config = {
            "ip": c.ip, "dn": c.device_name, "fn": fn, "hn": c.hostname, "mac": c.mac, "md": c.module,
            "ty": 0, "if": 0, "ofln": OFFLINE, "onln": ONLINE, "state": list(STATE_TEXT), "sw": c.version,
            "t": c.mqtt_topic, "ft": c.full_topic, "tp": list(c.prefixes), "rl": rl,
            "swc": [-1] * MAX_SLOTS, "swn": [None] * MAX_SLOTS, "btn": [0] * MAX_SLOTS,
            "so": {"4": 0, "11": 0, "13": 0, "17": 0, "20": 0, "30": 0, "68": 0, "73": 0, "82": 0,
                   "114": 0, "117": 0},
            "lk": 0, "lt_st": 1 if c.dimmer else 0, "bat": 0, "dslp": 0, "sho": [], "sht": [], "ver": 1,
        }
        sensors = {"sn": self.sensor_payload(now), "ver": 1}
        base = f"{DISCOVERY_PREFIX}/{c.mac}"
        return [Message(f"{base}/config", json.dumps(config, separators=(",", ":")), retain=True),
                Message(f"{base}/sensors", json.dumps(sensors, separators=(",", ":")), retain=True)]

    def telemetry(self, now: float) -> list[Message]:
        """The periodic `tele/<t>/STATE` and `tele/<t>/SENSOR` (every TelePeriod)."""
        out = [Message(self.tele("STATE"), _dump(self.state_payload(now)))]
        if self.meter is not None:
            out.append(Message(self.tele("SENSOR"), _dump(self.sensor_payload(now))))
            self.meter.period_wh = 0.0
        return out

    def boot(self, now: float) -> list[Message]:
        """What the firmware publishes once connected: LWT Online, INFO1..3, the power states."""
        c = self.config
        self.mqtt_count += 1
        out = [Message(self.lwt_topic, ONLINE, retain=True),
               Message(self.tele("INFO1"), _dump({"Info1": {"Module": c.module, "Version": f"{c.version}(tasmota)",
                                                           "FallbackTopic": f"cmnd/{c.client_id}_fb/",
                                                           "GroupTopic": f"cmnd/{c.group_topic}/"}})),
               Message(self.tele("INFO2"), _dump({"Info2": {"WebServerMode": "Admin", "Hostname": c.hostname,
                                                           "IPAddress": c.ip}})),
               Message(self.tele("INFO3"), _dump({"Info3": {"RestartReason": "Software/System restart",
                                                           "BootCount": 1}}))]
        out += [Message(self.stat(self._power_key(i)), STATE_TEXT[int(on)]) for i, on in enumerate(self.power)]
        return out

    # -- commands ---------------------------------------------------------------------------------

    def handle(self, command: str, payload: bytes | str, now: float) -> list[Message]:
        """Run one `cmnd/<t>/<command>` message; the messages the device answers with."""
        if isinstance(payload, bytes):
            if len(payload) > MAX_PAYLOAD:
                return []
            payload = payload.decode("utf-8", errors="replace")
        self.advance(now)
        name = command.strip()
        upper = name.upper()
        if upper == "BACKLOG" or upper.startswith("BACKLOG") and upper[7:].isdigit():
            out: list[Message] = []
            for part in [p.strip() for p in payload.split(";") if p.strip()][:MAX_BACKLOG]:
                cmd, _, arg = part.partition(" ")
                if cmd.upper() in ("NODELAY", "DELAY"):  # timing only; the simulator runs each at once
                    continue
                out += self._one(cmd, arg, now)
            return out
        return self._one(name, payload, now)

    def _one(self, name: str, arg: str, now: float) -> list[Message]:
        upper = name.upper()
        if upper.startswith("POWER"):
            index = upper[5:]
            if index == "" or index.isdigit():
                n = int(index or "1")
                if 1 <= n <= self.config.relays:
                    return self._power(n - 1, arg)
        elif upper == "DIMMER" and self.config.dimmer:
            return self._dimmer(arg)
        elif upper == "STATE":
            return [self._result(self.state_payload(now))]
        elif upper == "STATUS":
            return self._status(arg.strip(), now)
        elif upper == "TELEPERIOD":
            return [self._result({"TelePeriod": self._set_teleperiod(arg.strip())})]
        return [self._result({"Command": "Unknown"})]

    def _result(self, body: dict[str, Any]) -> Message:
        return Message(self.stat("RESULT"), _dump(body))

    def _power(self, index: int, arg: str) -> list[Message]:
        action = _on_off(arg)
        if action is not None:
            self.power[index] = (not self.power[index]) if action == 2 else bool(action)
        key = self._power_key(index)
        text = STATE_TEXT[int(self.power[index])]
        return [self._result({key: text}), Message(self.stat(key), text)]

    def _set_teleperiod(self, arg: str) -> int:
        # Commands doc: 0 = off, 1 = back to 300, 10..3600 s; below 10 is raised to 10.
        if arg.isdigit():
            n = int(arg)
            self.teleperiod = 0 if n == 0 else 300 if n == 1 else min(3600, max(10, n))
        return self.teleperiod

    def _dimmer(self, arg: str) -> list[Message]:
        text = arg.strip()
        value: int | None = None
        if text == "+":
            value = min(100, self.dimmer + 10)
        elif text == "-":
            value = max(1, self.dimmer - 10)
        else:
            try:
                value = max(0, min(100, round(float(text))))
            except (ValueError, OverflowError):
                value = None  # empty, not a number, or infinite ("INF"): report only
        if value is not None:
            if value == 0:
                self.power[-1] = False
            else:
                self.dimmer = value
                self.power[-1] = True  # SetOption20 0: a dimmer change powers the light on
        body = {self._power_key(self.config.relays - 1): STATE_TEXT[int(self.power[-1])], **self._light_json()}
        return [self._result(body)]

    def _status(self, arg: str, now: float) -> list[Message]:
        c = self.config
        uptime, _ = self._uptime(now)
        parts: dict[int, dict[str, Any]] = {
            1: {"StatusPRM": {"Baudrate": 115200, "SerialConfig": "8N1", "GroupTopic": c.group_topic,
                              "OtaUrl": "", "RestartReason": "Software/System restart", "Uptime": uptime,
                              "StartupUTC": self._time(self.booted_at), "Sleep": 50, "BootCount": 1,
                              "SaveCount": 1}},
            2: {"StatusFWR": {"Version": f"{c.version}(tasmota)", "BuildDateTime": "2024-11-19T10:00:00",
                              "Boot": 31, "Core": "2_7_7", "SDK": "2.2.2-dev(38a443e)", "CpuFrequency": 80,
                              "Hardware": "ESP8266EX", "CR": "372/699"}},
            5: {"StatusNET": {"Hostname": c.hostname, "IPAddress": c.ip, "Gateway": "127.0.0.1",
                              "Subnetmask": "255.0.0.0", "DNSServer1": "127.0.0.1",
                              "Mac": ":".join(c.mac[i:i + 2] for i in range(0, 12, 2)), "Webserver": 2,
                              "HTTP_API": 1, "WifiConfig": 4, "WifiPower": 17.0}},
            10: {"StatusSNS": self.sensor_payload(now)},
            11: {"StatusSTS": self.state_payload(now)},
        }
        if not arg.lstrip("-").isdigit():  # no number (the firmware's payload -99): the basic Status
            status = {"Status": {"Module": 0, "DeviceName": c.device_name,
                                 "FriendlyName": list(c.friendly_names or (c.device_name,)),
                                 "Topic": c.mqtt_topic, "ButtonTopic": "0",
                                 "Power": "".join("1" if p else "0" for p in self.power),
                                 "PowerOnState": 3, "LedState": 1, "LedMask": "FFFF", "SaveData": 1,
                                 "SaveState": 1, "SwitchTopic": "0", "SwitchMode": [0] * MAX_SLOTS,
                                 "ButtonRetain": 0, "SwitchRetain": 0, "SensorRetain": 0, "PowerRetain": 0,
                                 "InfoRetain": 0, "StateRetain": 0}}
            return [Message(self.stat("STATUS"), _dump(status))]
        n = int(arg)
        if n == 8:
            n = 10  # Status 8 is the older name of Status 10
        if n == 0:
            merged: dict[str, Any] = {}
            for part in (self._status("", now)[0], *[Message("", _dump(parts[k])) for k in sorted(parts)]):
                merged.update(json.loads(part.payload))
            return [Message(self.stat("STATUS0"), _dump(merged))]
        if n not in parts:  # a part the simulator doesn't model (4 memory, 6 MQTT, 7 time, ...)
            return [self._result({"Command": "Error"})]
        return [Message(self.stat(f"STATUS{n}"), _dump(parts[n]))]


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def plug2(mac: str = "5CCF7F0A1B01", topic: str = "", full_topic: str = "%prefix%/%topic%/",
          ip: str = "127.0.0.1") -> TasmotaConfig:
    """A two-outlet plug with one energy meter (HLW8012-style) on both relays."""
    return TasmotaConfig(mac=mac, module="Generic", relays=2, energy=True, loads_w=(60.0, 1200.0),
                         device_name="Tasmota Plug", friendly_names=("Lamp", "Heater"), topic=topic,
                         full_topic=full_topic, ip=ip)


def dimmer(mac: str = "5CCF7F0A1B02", topic: str = "", full_topic: str = "%prefix%/%topic%/",
           ip: str = "127.0.0.1") -> TasmotaConfig:
    """A single-channel PWM dimmer (light subtype 1)."""
    return TasmotaConfig(mac=mac, module="Generic", relays=1, dimmer=True, loads_w=(40.0,),
                         device_name="Tasmota Dimmer", friendly_names=("Dimmer",), topic=topic,
                         full_topic=full_topic, ip=ip)


MODELS = {"plug2": plug2, "dimmer": dimmer}
