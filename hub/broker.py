"""A private MQTT broker on loopback: Mosquitto when installed, else the embedded amqtt fallback.

Used by `hub demo` and by the tests. Both write a config that fixes what Mosquitto's
defaults get wrong for a hub (see shared/research/mqtt_eval.md): Nagle + delayed ACK make
QoS 1 round trips take 44-88 ms without `set_tcp_nodelay`, and the default
`max_queued_messages 1000` silently drops a fast stream to a slow subscriber.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

MOSQUITTO_TUNING = """\
set_tcp_nodelay true
max_queued_messages 100000
max_queued_bytes 67108864
max_inflight_messages 100
"""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s") from None
            time.sleep(0.02)


class Broker:
    """One broker process bound to loopback; `start()` and `stop()` own it."""

    def __init__(self, workdir: Path, port: int | None = None, host: str = "127.0.0.1",
                 persistence: bool = False, embedded: bool | None = None) -> None:
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.persistence = persistence
        self.embedded = embedded
        self.proc: subprocess.Popen | None = None
        self.kind = ""

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _mosquitto_conf(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            MOSQUITTO_TUNING,
        ]
        conf.write_text("\n".join(lines))
        return conf

    def start(self, timeout: float = 10.0) -> "Broker":
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        binary = mosquitto_binary()
        use_embedded = self.embedded if self.embedded is not None else binary is None
        logfile = open(self.workdir / "broker.log", "ab")
        if use_embedded:
            self.kind = "amqtt (embedded fallback: demo only, not for production)"
            cmd = [sys.executable, "-m", "hub.embedded_broker", "--host", self.host, "--port", str(self.port)]
        else:
            assert binary is not None
            self.kind = "mosquitto"
            cmd = [binary, "-c", str(self._mosquitto_conf())]
        # its own session: a terminal's Ctrl-C must not kill the broker before its clients
        self.proc = subprocess.Popen(cmd, stdout=logfile, stderr=logfile, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        logfile.close()
        try:
            wait_for_port(self.host, self.port, timeout, self.proc)
        except Exception:
            self.stop()
            raise
        log.info("%s listening on %s", self.kind, self.url)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, for fault tests: the broker dies with no clean shutdown."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
