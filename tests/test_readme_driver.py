"""README's "Writing a driver" is a test: its example driver and its tests, with the README's
entry point, become a package outside the tree; `pip install` puts it in a fresh venv that sees
the hub's install (as `--system-site-packages` would see a system-wide hub); there the package's
own tests pass the conformance kit, and a real hub finds the driver by entry point and adopts a
device announced over a real Mosquitto.

Offline on purpose: the build uses the hub venv's setuptools and wheel (`--no-build-isolation
--no-index --no-deps`), so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from hub.broker import Broker
from hub.config import ConfigError, driver_options
from hub.conformance import TestConformance as Checks

ROOT = Path(__file__).resolve().parents[1]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Writing a driver\n")
    return text[start:text.index("\n## ", start + 1)]


def block(first_line: str) -> str:
    """The README code block under "Writing a driver" whose first line starts with `first_line`."""
    for lang, code in re.findall(r"```(\w+)\n(.*?)```", section(), flags=re.S):
        if code.startswith(first_line):
            return code
    raise AssertionError(f"README's 'Writing a driver' has no code block starting {first_line!r}")


def pyproject() -> str:
    return textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "acme-hub-driver"
        version = "0.1.0"
        requires-python = ">=3.11"

        [tool.setuptools]
        py-modules = ["acme_driver"]

        """) + block("[project.entry-points")


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the README's driver package, installed by pip from its source."""
    base = tmp_path_factory.mktemp("readme-driver")
    package = base / "acme-hub-driver"
    (package / "tests").mkdir(parents=True)
    (package / "pyproject.toml").write_text(pyproject())
    (package / "acme_driver.py").write_text(block("# acme_driver.py"))
    (package / "tests" / "test_acme.py").write_text(block("# tests/test_acme.py"))
    env = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(subprocess.run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # the hub's own site directory, with its .pth files (the hub is an editable install)
    (site / "zz-hub.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
                    "--no-index", "--no-deps", "--no-build-isolation", str(package)],
                   check=True, capture_output=True, text=True, timeout=120)
    assert not (site / "acme_driver.py").is_symlink() and (site / "acme_driver.py").exists()
    return env


def run(env: Path, *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(env / "bin" / "python"), *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=timeout)


def test_the_package_passes_the_conformance_kit_with_its_own_tests(venv: Path, tmp_path: Path) -> None:
    tests = venv.parent / "acme-hub-driver" / "tests"
    out = run(venv, "-m", "pytest", "-p", "hub.conformance", "-p", "no:cacheprovider", "-q", str(tests),
              cwd=tmp_path)  # not the package's folder: the installed copy is imported
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    checks = sum(name.startswith("test_") for name in dir(Checks))
    assert re.search(rf"\b{checks} passed\b", out.stdout), out.stdout[-1000:]  # every check ran, none skipped


HUB_SCRIPT = """
import asyncio, json, sys
from pathlib import Path

import acme_driver
import aiomqtt
from hub.broker import free_port
from hub.config import HubConfig
from hub.driver import load_drivers
from hub.service import running_hub


async def main(broker_url: str, port: int, data: str) -> None:
    config = HubConfig(inbox=False, data_dir=Path(data), mqtt={"url": broker_url, "keepalive": 5},
                       http={"host": "127.0.0.1", "port": free_port()}, discovery={"interfaces": ["127.0.0.1"]},
                       command_timeout=5.0)
    async with aiomqtt.Client("127.0.0.1", port, identifier="plug-00a1b2") as plug:
        await plug.subscribe("acme/+/set")
        async with running_hub(config) as (hub, url):
            await hub.mqtt.wait_connected(10)
            await plug.publish("acme/00a1b2/config", '{"model": "P1"}', qos=1, retain=True)
            await plug.publish("acme/00a1b2/state", '{"POWER": "OFF", "watts": 0.5}', qos=1, retain=True)
            found = lambda: (d := hub.registry.get("acme-00a1b2")) is not None and d.state.values.get("power") == 0.5
            assert await hub.bus.wait_until(found, 10), "the hub did not adopt the plug"

            async def answer() -> None:  # the plug applies each command and reports its state
                async for message in plug.messages:
                    await plug.publish(str(message.topic).removesuffix("/set") + "/state", message.payload, qos=1)
            answering = asyncio.create_task(answer())
            confirmed = await hub.set_state("acme-00a1b2", {"on": True})
            answering.cancel()
            device = hub.registry.get("acme-00a1b2")
            print(json.dumps({"entry_points": sorted(load_drivers()), "running": sorted(hub.drivers),
                              "module": acme_driver.__file__, "driver": device.info.driver,
                              "online": device.state.online, "confirmed": confirmed}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
"""


def test_a_real_hub_finds_the_installed_driver_and_adopts_its_device(
    venv: Path, broker: Broker, tmp_path: Path
) -> None:
    script = tmp_path / "hub_with_acme.py"
    script.write_text(HUB_SCRIPT)
    out = run(venv, str(script), broker.url, str(broker.port), str(tmp_path / "data"), cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "acme" in result["entry_points"] and "acme" in result["running"]
    assert result["module"].startswith(str(venv))  # the pip-installed copy, found by entry point
    assert (result["driver"], result["online"]) == ("acme", True)
    assert result["confirmed"]["on"] is True


def test_the_readme_option_error_is_what_the_hub_says() -> None:
    namespace: dict[str, object] = {}
    exec(compile(block("# acme_driver.py"), "README:acme_driver.py", "exec"), namespace)  # noqa: S102
    with pytest.raises(ConfigError) as err:
        driver_options("acme", namespace["Options"], {"nme_prefix": "x"})  # type: ignore[arg-type]
    quoted = re.search(r"a typo stops\s+the start with `([^`]*)`", section())
    assert quoted is not None and quoted.group(1) in str(err.value)
