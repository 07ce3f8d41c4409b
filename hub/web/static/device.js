// The device page: every expose, a history chart per numeric value, rename, room, ignore, forget,
// "last seen", the driver and the model.

import { api } from "./api.js";
import { controlFor, row } from "./controls.js";
import { ago, el, fmt, kindOf, label, placement } from "./format.js";
import { player } from "./player.js";
import { devices, on, removeDevice, replaceDevice } from "./store.js";

const PLAYER_OWNS = /^(power|power_state|input|video_mute|audio_mute|freeze|volume|lamp_hours|error_.*|media_.*)$/;
const DAY = 86400;
const SVG = "http://www.w3.org/2000/svg";

let root = null;
let current = null;  // {id, update(changed), charts: Map(name -> fn(t, v))}

function svg(tag, attrs) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
}

/** A small line chart of [t, v] points as inline SVG, described in words for screen readers. */
export function chart(e, points, since) {
  const W = 320, H = 80, P = 4;
  const box = el("figure", { class: "chart" });
  const caption = el("figcaption", { text: label(e) });
  const draw = () => {
    const pts = points.filter(([, v]) => typeof v === "number" || typeof v === "boolean").map(([t, v]) => [t, Number(v)]);
    const pic = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", preserveAspectRatio: "none" });
    if (pts.length === 0) {
      pic.setAttribute("aria-label", `${label(e)}: no history yet`);
      box.replaceChildren(caption, el("p", { class: "hint", text: "No history yet." }));
      return;
    }
    const now = Date.now() / 1000;
    const vs = pts.map((p) => p[1]);
    let lo = Math.min(...vs), hi = Math.max(...vs);
    if (hi === lo) { hi += 1; lo -= 1; }
    const x = (t) => P + ((t - since) / Math.max(1, now - since)) * (W - 2 * P);
    const y = (v) => H - P - ((v - lo) / (hi - lo)) * (H - 2 * P);
    // a step line: a value holds until the next one arrives, and up to now
    let d = "";
    pts.forEach(([t, v], i) => { d += i ? `H${x(t).toFixed(1)}V${y(v).toFixed(1)}` : `M${x(t).toFixed(1)} ${y(v).toFixed(1)}`; });
    d += `H${x(now).toFixed(1)}`;
    pic.append(svg("path", { d, class: "line", fill: "none", "vector-effect": "non-scaling-stroke" }));
    const last = pts[pts.length - 1][1];
    const words = `${label(e)} over the last 24 hours: from ${fmt(Math.min(...vs), e)} to ${fmt(Math.max(...vs), e)}, now ${fmt(last, e)}`;
    pic.setAttribute("aria-label", words);
    box.replaceChildren(caption, pic, el("p", { class: "hint range", text: `${fmt(Math.min(...vs), e)} – ${fmt(Math.max(...vs), e)}` }));
  };
  draw();
  return { node: box, add: (t, v) => { points.push([t, v]); draw(); } };
}

async function loadHistory(dev, e, slot, charts) {
  const since = Math.floor(Date.now() / 1000) - DAY;
  let points = [];
  try {
    const h = await api(`/api/devices/${encodeURIComponent(dev.id)}/history?property=${encodeURIComponent(e.name)}&since=${since}`);
    points = h.points || [];
  } catch { /* no history kept (yet): the chart says so */ }
  const c = chart(e, points, since);
  slot.replaceChildren(c.node);
  charts.set(e.name, c.add);
}

function settings(dev) {
  const name = el("input", { id: "dev-name", value: dev.name, required: true, maxlength: "80" });
  const room = el("input", { id: "dev-room", value: dev.room || "", list: "room-names", maxlength: "80" });
  const msg = el("p", { class: "hint", role: "status" });
  const form = el("form", { class: "settings", "aria-label": "Name and room" },
    el("label", { for: "dev-name", text: "Name" }), name,
    el("label", { for: "dev-room", text: "Room" }), room,
    el("button", { type: "submit", text: "Save" }), msg);
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const body = { name: name.value.trim(), room: room.value.trim() };
      if (dev.inbox) body.inbox = false;
      replaceDevice(await api(`/api/devices/${encodeURIComponent(dev.id)}`, { method: "PATCH", body }));
      msg.textContent = "Saved.";
    } catch (err) { msg.textContent = err.message; }
  };
  const ignore = el("button", { type: "button", class: "quiet", text: dev.ignored ? "Show on home again" : "Ignore this device" });
  ignore.onclick = async () => {
    try { replaceDevice(await api(`/api/devices/${encodeURIComponent(dev.id)}`, { method: "PATCH", body: { ignored: !dev.ignored } })); }
    catch (err) { msg.textContent = err.message; }
  };
  const forget = el("button", { type: "button", class: "danger", text: "Forget this device" });
  forget.onclick = async () => {
    if (!confirm(`Forget ${dev.name}? Its name, room and history go; it comes back as new if it is seen again.`)) return;
    try {
      await api(`/api/devices/${encodeURIComponent(dev.id)}`, { method: "DELETE" });
      removeDevice(dev.id);
      location.hash = "#/";
    } catch (err) { msg.textContent = err.message; }
  };
  return el("section", { class: "panel", "aria-labelledby": "dev-settings" }, el("h3", { id: "dev-settings", text: "Settings" }), form,
    el("div", { class: "buttons" }, ignore, forget));
}

function render(dev) {
  const updates = new Map();
  const charts = new Map();
  const add = (name, fn) => { if (!updates.has(name)) updates.set(name, []); updates.get(name).push(fn); };
  const projector = kindOf(dev) === "projector";
  const seen = el("span", {});
  const showSeen = () => { seen.textContent = `${dev.online ? "online" : "offline"} · last seen ${ago(dev.last_seen)}`; };
  showSeen();
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "Status" }), el("dd", {}, seen),
    el("dt", { text: "Model" }), el("dd", { text: [dev.manufacturer, dev.model].filter(Boolean).join(" ") || "–" }),
    el("dt", { text: "Driver" }), el("dd", { text: dev.driver }),
    el("dt", { text: "Id" }), el("dd", { text: dev.id }));
  const parts = [el("p", {}, el("a", { href: "#/", text: "← Home" })),
    el("header", { class: "view-head" }, el("h2", { id: "device-title", text: dev.name }), el("span", { class: "hint", text: dev.room || "No room" })),
    facts];
  if (dev.error) parts.push(el("p", { class: "error", role: "alert", text: dev.error }));
  let p = null;
  if (projector) {
    p = player(dev, { full: true });
    parts.push(el("section", { class: "panel" }, p.node));
  }
  const controls = el("div", { class: "controls" });
  const details = el("div", { class: "controls" });
  const history = el("div", { class: "charts" });
  for (const e of dev.exposes) {
    const where = placement(e);
    if (where === "hidden" || (projector && where === "control" && PLAYER_OWNS.test(e.name))) continue;
    const c = controlFor(dev, e);
    add(e.name, c.update);
    (where === "detail" ? details : controls).append(row(e, c));
  }
  for (const e of dev.exposes) {
    // the household's values (temperatures, power, brightness), not counters like lamp hours
    if (e.type !== "numeric" || placement(e) !== "control" || !(e.access & 1) || e.name.startsWith("media_")) continue;
    const slot = el("div", { class: "chart-slot" });
    history.append(slot);
    loadHistory(dev, e, slot, charts);
  }
  if (controls.children.length) parts.push(el("section", { class: "panel", "aria-label": "Controls" }, controls));
  if (history.children.length) parts.push(el("section", { class: "panel", "aria-labelledby": "dev-history" }, el("h3", { id: "dev-history", text: "History" }), history));
  if (details.children.length) parts.push(el("details", { class: "panel" }, el("summary", { text: "Details" }), details));
  parts.push(settings(dev));
  root.replaceChildren(...parts);
  const update = (changed) => {
    for (const [name, v] of Object.entries(changed)) {
      for (const fn of updates.get(name) || []) fn(v);
      const c = charts.get(name);
      if (c && typeof v === "number") c(Date.now() / 1000, v);
    }
    if (p) p.update(changed);
    showSeen();
  };
  update(dev.state);
  current = { id: dev.id, update, showSeen };
}

export function mountDevice(node) {
  root = node;
  on("state", (id, changed) => { if (current && current.id === id) current.update(changed); });
  on("availability", (dev) => { if (current && current.id === dev.id) current.showSeen(); });
  on("updated", (dev) => { if (current && current.id === dev.id && root.isConnected && !root.hidden) render(dev); });
  on("snapshot", () => { if (current && devices.has(current.id) && !root.hidden) render(devices.get(current.id)); });
}

/** Show device `id` (called by the router). */
export function openDevice(id) {
  const dev = devices.get(id);
  if (!dev) {
    current = null;
    root.replaceChildren(el("p", {}, el("a", { href: "#/", text: "← Home" })), el("h2", { text: "No such device" }),
      el("p", { class: "hint", text: devices.size ? "It may have been forgotten." : "Loading…" }));
    return;
  }
  render(dev);
}
