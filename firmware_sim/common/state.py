"""Device state on disk: one JSON file per device, replaced atomically."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StateStore:
    """One JSON file per device under `directory`, replaced atomically (temp, fsync, rename)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path(self, device_id: str) -> Path:
        return self.directory / f"{device_id}.json"

    def load(self, device_id: str) -> dict[str, Any]:
        """The saved state, or {} when absent; an unreadable file is set aside as `.bad`."""
        path = self.path(device_id)
        try:
            data = json.loads(path.read_text("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("state of %s unreadable (%s); starting from defaults", device_id, exc)
            try:
                os.replace(path, path.with_suffix(".json.bad"))
            except OSError:
                pass
            return {}

    def save(self, device_id: str, data: Mapping[str, Any]) -> None:
        """Blocking: run it in a thread. Readers see the old file or the new one, never half."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(device_id)
        tmp = path.with_suffix(f".json.tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "firmware-sim"
