"""The units verify, and `hub run` tells systemd it is ready and keeps the watchdog fed."""

import shutil
import socket
import subprocess
import sys
from pathlib import Path

from hub.broker import Broker, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_units_verify(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    for unit in ("hub.service", "firmware-sim@.service"):
        text = (ROOT / "systemd" / unit).read_text().replace("/opt/hub/venv", str(venv))
        (tmp_path / unit).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "hub.service", "firmware-sim@house.service"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ours = [line for line in r.stderr.splitlines() if "hub.service" in line or "firmware-sim@" in line]
    assert ours == []


def test_hub_run_notifies_ready_and_watchdog(tmp_path: Path, broker: Broker) -> None:
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(sock_path))
        s.settimeout(20)
        env = {"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000",
               "HUB_MQTT_URL": broker.url, "HUB_HTTP_HOST": "127.0.0.1", "HUB_HTTP_PORT": str(free_port()),
               "HUB_DISCOVERY_INTERFACES": "127.0.0.1"}
        log = open(tmp_path / "hub.log", "wb")
        proc = subprocess.Popen([shutil.which("hub") or str(Path(sys.executable).parent / "hub"), "run",
                                 "--data", str(tmp_path / "data")], env=env, stdout=log, stderr=log)
        try:
            got = []
            while "WATCHDOG=1" not in got:
                got.append(s.recv(256).decode())
            assert got.index("READY=1") < got.index("WATCHDOG=1")
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError("hub run did not stop within 15 s of SIGTERM:\n"
                                     + (tmp_path / "hub.log").read_text()[-2000:]) from None
            log.close()
        assert proc.returncode == 0, (tmp_path / "hub.log").read_text()
        assert s.recv(256).decode() == "STOPPING=1"
