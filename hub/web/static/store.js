// The page's copy of the hub: devices by id, kept current by the socket's snapshot and events.
// State events are merged per device and handed to views once per frame, so 500 values a
// second cost 60 small DOM updates a second, never a re-render.

export const devices = new Map();  // id -> device JSON (state updated in place)
const listeners = new Map();       // event name -> Set of fn
const pending = new Map();         // id -> changed state since the last frame
let frame = 0;

export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
  return () => listeners.get(name).delete(fn);
}

function emit(name, ...args) {
  for (const fn of listeners.get(name) || []) {
    try { fn(...args); } catch (err) { console.warn(`${name} view failed`, err); }
  }
}

function flush() {
  frame = 0;
  const batch = [...pending];
  pending.clear();
  for (const [id, changed] of batch) emit("state", id, changed);
}

/** Merge a state change into the model now; tell the views on the next frame. */
export function applyState(id, state) {
  const dev = devices.get(id);
  if (!dev || !state) return;
  Object.assign(dev.state, state);
  dev.last_seen = Date.now() / 1000;  // a value just came in: the device was seen now
  pending.set(id, Object.assign(pending.get(id) || {}, state));
  if (!frame) frame = requestAnimationFrame(flush);
}

/** Draw `names` again from the model (a refused command snaps its control back). */
export function redraw(id, names) {
  const dev = devices.get(id);
  if (!dev) return;
  pending.set(id, Object.assign(pending.get(id) || {}, Object.fromEntries(names.map((n) => [n, dev.state[n]]))));
  if (!frame) frame = requestAnimationFrame(flush);
}

/** A device changed as a whole (renamed, moved, new exposes, PATCH answer). */
export function replaceDevice(dev) {
  const before = devices.get(dev.id);
  devices.set(dev.id, dev);
  emit(before ? "updated" : "added", dev, before);
}

export function removeDevice(id) {
  if (devices.delete(id)) emit("removed", id);
}

export function onEvent(ev) {
  switch (ev.type) {
    case "snapshot": {
      // after a reconnect, keep each known device's object: views hold it, and only changes redraw
      const fresh = new Map();
      for (const d of ev.devices) {
        const old = devices.get(d.id);
        if (old) {
          const state = Object.assign(old.state, d.state);
          fresh.set(d.id, Object.assign(old, d, { state }));
        } else {
          fresh.set(d.id, d);
        }
      }
      devices.clear();
      for (const [id, d] of fresh) devices.set(id, d);
      emit("snapshot");
      break;
    }
    case "device_added":
    case "device_updated":
      replaceDevice(ev.device);
      break;
    case "device_removed":
      removeDevice(ev.id || (ev.device && ev.device.id));
      break;
    case "state":
      applyState(ev.id, ev.state);
      break;
    case "availability": {
      const dev = devices.get(ev.id);
      if (dev) {
        dev.online = ev.online;
        if (ev.online) dev.last_seen = Date.now() / 1000;
        emit("availability", dev);
      }
      break;
    }
    default:
      emit(ev.type, ev);  // sync_progress, scene_result, and whatever comes next
  }
}
