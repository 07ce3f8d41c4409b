"""Shared fixtures: every test runs inside a network namespace with loopback only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.broker import Broker


def pytest_configure(config: pytest.Config) -> None:
    # mDNS and PJLink broadcasts must never leave this machine: refuse to run outside the
    # namespace that scripts/in-netns makes (make test uses it).
    if os.environ.get("HUB_IN_NETNS") != "1":
        raise pytest.UsageError("run the tests inside scripts/in-netns (make test does this)")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto on a free loopback port, stopped after the test."""
    b = Broker(tmp_path / "broker", embedded=False)
    b.start()
    try:
        yield b
    finally:
        b.stop()
