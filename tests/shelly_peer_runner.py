"""Drives a Shelly Gen2 device with aioshelly (Python >= 3.12 venv, .venv313) for the tests.

argv[1]: JSON {"host", "port", "password"?, "ops": [...]}, or {"discover": <count>} to find devices with
aioshelly's zeroconf helpers on 127.0.0.1 and print [{"name", "type", "host", "port"}, ...]. Connects with `RpcDevice`, runs each op
and prints one JSON object: {"init": {...} or {"error": ...}, "results": [...], "updates": [...]}.
Ops: {"op": "switch_set", "id", "on"}, {"op": "cover_set_position", "id", "pos"},
{"op": "call", "method", "params"}, {"op": "wait", "key", "field", "value"} (until a
NotifyStatus-merged status has status[key][field] == value, 15 s at most), {"op": "wait_event",
"event"} (a NotifyEvent carrying it), {"op": "status", "key"}.
"""

import asyncio
import json
import sys

import aiohttp
from aioshelly.common import ConnectionOptions, get_info
from aioshelly.exceptions import ShellyError
from aioshelly.rpc_device import RpcDevice, RpcUpdateType


def error(exc: BaseException) -> dict:
    return {"error": type(exc).__name__, "message": str(exc)}


async def discover(count: int) -> None:
    """aioshelly's own discovery: browsers fill the cache, `async_discover_devices` reads it."""
    from zeroconf import IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf
    from aioshelly.zeroconf import SHELLY_TYPES, async_discover_devices, async_lookup_device_by_name

    aiozc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    seen: set[str] = set()
    enough = asyncio.Event()

    def on_change(zeroconf, service_type, name, state_change) -> None:
        if state_change is ServiceStateChange.Added and service_type == SHELLY_TYPES[0]:
            seen.add(name)
            if len(seen) >= count:
                enough.set()

    browser = AsyncServiceBrowser(aiozc.zeroconf, list(SHELLY_TYPES), handlers=[on_change])
    try:
        await asyncio.wait_for(enough.wait(), 15)
        found = await async_discover_devices(aiozc)
        out = [{"name": i.name, "type": i.type, "host": i.parsed_addresses(IPVersion.V4Only)[0], "port": i.port}
               for i in found]
        first = found[0].name.partition(".")[0]
        out.append({"lookup": first, "result": await async_lookup_device_by_name(aiozc, first)})
    finally:
        await browser.async_cancel()
        await aiozc.async_close()
    print(json.dumps(out), flush=True)


async def main() -> None:
    opts = json.loads(sys.argv[1])
    if "discover" in opts:
        await discover(opts["discover"])
        return
    out: dict = {"results": [], "updates": []}
    changed = asyncio.Condition()

    def on_update(device: RpcDevice, kind: RpcUpdateType) -> None:
        out["updates"].append(kind.name)

        async def wake() -> None:
            async with changed:
                changed.notify_all()
        asyncio.get_running_loop().create_task(wake())

    async with aiohttp.ClientSession() as session:
        try:
            info = await get_info(session, opts["host"], port=opts["port"])
        except ShellyError as exc:
            out["init"] = error(exc)
            print(json.dumps(out), flush=True)
            return
        password = opts.get("password")
        options = ConnectionOptions(opts["host"], "admin" if password else None, password, port=opts["port"],
                                    device_mac=info["mac"])
        device = await RpcDevice.create(session, None, options)
        device.subscribe_updates(on_update)
        try:
            await device.initialize()
        except ShellyError as exc:
            out["init"] = error(exc)
            print(json.dumps(out), flush=True)
            await device.shutdown()
            return
        out["init"] = {"info": info, "initialized": device.initialized, "firmware_supported": device.firmware_supported,
                       "name": device.name, "model": device.model, "gen": device.gen, "hostname": device.hostname,
                       "requires_auth": device.requires_auth, "status_keys": sorted(device.status),
                       "status": json.loads(json.dumps(device.status))}
        for op in opts.get("ops", []):
            kind = op["op"]
            try:
                if kind == "switch_set":
                    await device.switch_set(op["id"], op["on"])
                    result = {"ok": True}
                elif kind == "cover_set_position":
                    await device.cover_set_position(op["id"], pos=op["pos"])
                    result = {"ok": True}
                elif kind == "call":
                    result = {"result": await device.call_rpc(op["method"], op.get("params"))}
                elif kind == "wait_event":
                    def fired() -> bool:
                        return any(e.get("event") == op["event"] for e in (device.event or {}).get("events", []))
                    async with changed:
                        await asyncio.wait_for(changed.wait_for(fired), 15)
                    result = {"event": device.event}
                elif kind == "status":
                    result = {"status": device.status.get(op["key"])}
                elif kind == "wait":
                    def seen() -> bool:
                        return device.status.get(op["key"], {}).get(op["field"]) == op["value"]
                    async with changed:
                        await asyncio.wait_for(changed.wait_for(seen), 15)
                    result = {"status": json.loads(json.dumps(device.status[op["key"]]))}
                else:
                    result = {"error": "unknown op"}
            except (ShellyError, TimeoutError) as exc:
                result = error(exc)
            out["results"].append(result)
        await device.shutdown()
    print(json.dumps(out), flush=True)


asyncio.run(main())
