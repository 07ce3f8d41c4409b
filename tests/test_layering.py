"""Dependencies point inward: devices -> hub's driver API; hub never imports devices; firmware_sim neither.

Inside firmware_sim each device family is its own package and imports only itself and
`firmware_sim.common`; the one declared exception is the projector's media player, a Homie 5
device, which uses the Homie family through its public names (`firmware_sim.homie`).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVER_API = {"hub", "hub.driver", "hub.model"}
SIM = ROOT / "firmware_sim"
SHARED = "common"
# family -> the other families' packages it may import, by their public name only
SIM_EDGES = {"projector": {"firmware_sim.homie"}}


def _module_of(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def imports(package: str) -> dict[str, set[str]]:
    """Every module each file imports, relative imports resolved to absolute names."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        here = _module_of(path)
        package_parts = here if path.name == "__init__.py" else here[:-1]
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    base = node.module or ""
                else:
                    parent = package_parts[:len(package_parts) - (node.level - 1)]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                if node.module is None:  # `from . import x`: x is a module
                    names |= {f"{base}.{a.name}" for a in node.names}
                else:
                    names.add(base)
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


def test_drivers_never_import_simulators() -> None:
    bad = {f: n for f, n in imports("devices").items() if any(m.split(".")[0] == "firmware_sim" for m in n)}
    assert bad == {}


def test_every_simulator_module_lives_in_a_family_or_the_shared_package() -> None:
    flat = {p.name for p in SIM.glob("*.py")}
    assert flat == {"__init__.py", "cli.py"}  # cli.py: the `firmware-sim` entry point, imports lazily


def test_simulator_families_share_only_the_common_package() -> None:
    families = {p.name for p in SIM.iterdir() if (p / "__init__.py").is_file()} - {SHARED}
    assert {"homie", "projector", "cloud", "shelly", "tasmota"} <= families
    bad: dict[str, set[str]] = {}
    for file, names in imports("firmware_sim").items():
        parts = Path(file).parts
        if len(parts) < 3:  # firmware_sim/__init__.py, firmware_sim/cli.py
            continue
        own = parts[1]
        allowed = {f"firmware_sim.{own}", f"firmware_sim.{SHARED}"}
        if own == SHARED:
            allowed = {f"firmware_sim.{SHARED}"}
        edges = SIM_EDGES.get(own, set())
        wrong = {m for m in names if m.split(".")[0] == "firmware_sim" and m not in edges
                 and not any(m == a or m.startswith(a + ".") for a in allowed)}
        if wrong:
            bad[file] = wrong
    assert bad == {}
