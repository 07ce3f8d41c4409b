"""Dependencies point inward: devices -> hub's driver API; hub never imports devices; firmware_sim neither."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVER_API = {"hub", "hub.driver", "hub.model"}


def imports(package: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


def test_hub_never_imports_drivers_or_simulators() -> None:
    bad = {f: n for f, n in imports("hub").items() if any(m.split(".")[0] in ("devices", "firmware_sim") for m in n)}
    assert bad == {}


def test_simulators_are_independent_of_the_hub() -> None:
    bad = {f: n for f, n in imports("firmware_sim").items() if any(m.split(".")[0] in ("hub", "devices") for m in n)}
    assert bad == {}


def test_drivers_use_only_the_driver_api() -> None:
    bad = {f: {m for m in n if m.split(".")[0] == "hub" and m not in DRIVER_API}
           for f, n in imports("devices").items()}
    assert {f: n for f, n in bad.items() if n} == {}
