// Home: rooms of device cards, each showing what matters at a glance, and the inbox of new devices.
// A state event touches only the controls of the values that changed; a card moves only when its
// room or name changes.

import { api } from "./api.js";
import { actionButtons, controlFor, enumControl, readout, row, sliderControl, switchControl } from "./controls.js";
import { ago, el, expose, fmt, kindOf, lightColour, placement } from "./format.js";
import { player } from "./player.js";
import { devices, on, replaceDevice } from "./store.js";

const UNASSIGNED = "No room";
const cards = new Map();  // id -> {node, update(changed), room, name}
const rooms = new Map();  // room -> {section, grid}
let roomsRoot, inboxRoot, inboxList, ignoredRoot, summary;

const roomOf = (d) => d.room || UNASSIGNED;
const inInbox = (d) => d.inbox === true && !d.ignored;
const onHome = (d) => !d.inbox && !d.ignored;

function line(text, node, cls = "row") {
  return el("div", { class: cls }, el("span", { class: "label", text }), node);
}

/** The few controls that matter for this kind of device; fn(name, control) registers updates. */
function body(dev, use) {
  const x = (n) => expose(dev, n);
  const box = el("div", { class: "glance" });
  switch (kindOf(dev)) {
    case "light": {
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      const paint = () => {
        swatch.style.background = lightColour(dev.state);
        swatch.classList.toggle("off", !dev.state.on);
      };
      for (const n of ["on", "color", "color_temperature"]) use(n, { update: paint });
      box.append(el("div", { class: "row" }, swatch, use("on", switchControl(dev, x("on"), `${dev.name}: Power`))));
      if (x("brightness")) box.append(line("Brightness", use("brightness", sliderControl(dev, x("brightness")))));
      break;
    }
    case "blind": {
      const state = use("state", readout(x("state") || { type: "text" }));
      box.append(line("Position", use("position", sliderControl(dev, x("position")))),
        el("div", { class: "row" }, state, actionButtons(dev, x("action")).node));
      break;
    }
    case "thermostat": {
      const cur = x("current_temperature");
      const now = el("span", { class: "big" });
      if (cur) use("current_temperature", { update: (v) => { now.textContent = fmt(v, cur); } });
      const heating = el("span", { class: "hint" });
      if (x("heating")) use("heating", { update: (v) => { heating.textContent = v ? "heating" : ""; } });
      box.append(el("div", { class: "row" }, now, heating));
      if (x("target_temperature")) box.append(line("Target", use("target_temperature", sliderControl(dev, x("target_temperature"), `${dev.name}: Target temperature`))));
      if (x("mode")) box.append(line("Mode", use("mode", enumControl(dev, x("mode")))));
      break;
    }
    case "projector":
      return player(dev);
    case "lock":
      box.append(line("Locked", use("locked", switchControl(dev, x("locked"), `${dev.name}: Locked`))));
      if (x("jammed")) use("jammed", { update: (v) => { box.classList.toggle("alarm", !!v); } });
      break;
    case "plug":
      box.append(line("Power", use("on", switchControl(dev, x("on"), `${dev.name}: Power`))));
      if (x("power")) box.append(line("Using", use("power", readout(x("power")))));
      break;
    default: {
      // sensors: their values with units; anything else (a two-relay plug): each control as it is
      for (const e of dev.exposes) {
        if (placement(e) !== "control") continue;
        const r = controlFor(dev, e);
        use(e.name, r);
        box.append(row(e, r));
      }
    }
  }
  return box;
}

const signature = (d) => JSON.stringify([d.name, d.room, d.exposes]);

function buildCard(dev) {
  const updates = new Map();
  const use = (name, c) => {
    if (!updates.has(name)) updates.set(name, []);
    updates.get(name).push(c.update);
    return c.node;
  };
  const fresh = el("span", { class: "fresh" });
  const status = el("span", { class: "status" });
  const head = el("header", {},
    el("h3", {}, el("a", { href: `#/device/${encodeURIComponent(dev.id)}`, text: dev.name })), status);
  const b = body(dev, use);
  const node = el("article", { class: `card kind-${kindOf(dev)}`, "data-id": dev.id, "aria-label": dev.name }, head, b.node || b, fresh);
  const sensor = kindOf(dev) === "sensor";
  const showAvailability = () => {
    node.classList.toggle("offline", !dev.online);
    status.textContent = dev.online ? "" : "offline";
    // a sensor's value is only as good as its age; a control's state is confirmed, so no hint
    fresh.textContent = !dev.online ? `last seen ${ago(dev.last_seen)}` : sensor && dev.last_seen ? `updated ${ago(dev.last_seen)}` : "";
  };
  const update = (changed) => {
    for (const [name, v] of Object.entries(changed)) for (const fn of updates.get(name) || []) fn(v);
    if (b.update) b.update(changed);
    if (sensor) showAvailability();
  };
  update(dev.state);
  showAvailability();
  return { node, update, showAvailability, sensor, room: roomOf(dev), name: dev.name, sig: signature(dev) };
}

function roomSection(room) {
  let r = rooms.get(room);
  if (r) return r;
  const id = `room-${rooms.size}`;
  const grid = el("div", { class: "grid" });
  const section = el("section", { class: "room", "data-room": room, "aria-labelledby": id },
    el("h2", { id, text: room }), grid);
  r = { section, grid };
  rooms.set(room, r);
  // rooms in alphabetical order, "No room" last
  const order = [...rooms.keys()].sort((a, b) => (a === UNASSIGNED) - (b === UNASSIGNED) || a.localeCompare(b));
  const next = order[order.indexOf(room) + 1];
  roomsRoot.insertBefore(section, next ? rooms.get(next).section : null);
  return r;
}

function place(dev) {
  const c = cards.get(dev.id);
  const { grid } = roomSection(c.room);
  // insert by name; a linear scan of one room is cheap next to re-laying the house out
  let before = null;
  for (const other of grid.children) {
    const o = cards.get(other.dataset.id);
    if (o && o.name.localeCompare(c.name) > 0) { before = other; break; }
  }
  grid.insertBefore(c.node, before);
}

function unplace(id) {
  const c = cards.get(id);
  if (!c) return;
  const parent = c.node.parentElement;
  c.node.remove();
  cards.delete(id);
  if (parent && !parent.children.length) {
    rooms.get(c.room).section.remove();
    rooms.delete(c.room);
  }
}

function showDevice(dev) {
  unplace(dev.id);
  if (onHome(dev)) {
    cards.set(dev.id, buildCard(dev));
    place(dev);
  }
}

// -- the inbox --------------------------------------------------------------------------------

function roomNames() {
  return [...new Set([...devices.values()].map((d) => d.room).filter(Boolean))].sort();
}

function inboxItem(dev) {
  const nameId = `inbox-name-${dev.id}`, roomId = `inbox-room-${dev.id}`;
  const name = el("input", { id: nameId, value: dev.name, required: true, maxlength: "80" });
  const room = el("input", { id: roomId, value: dev.room || "", list: "room-names", maxlength: "80" });
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const form = el("form", { class: "inbox-item", "aria-label": `New device ${dev.name}`, "data-id": dev.id },
    el("p", { class: "what", text: [dev.model, dev.manufacturer, dev.driver].filter(Boolean).join(" · ") }),
    el("label", { for: nameId, text: "Name" }), name,
    el("label", { for: roomId, text: "Room" }), room,
    el("div", { class: "buttons" }, el("button", { type: "submit", class: "primary", text: "Add to home" }), el("button", { type: "button", class: "quiet", text: "Ignore" })),
    err);
  const patch = async (body) => {
    try { replaceDevice(await api(`/api/devices/${encodeURIComponent(dev.id)}`, { method: "PATCH", body })); }
    catch (e) { err.hidden = false; err.textContent = e.message; }
  };
  form.onsubmit = (ev) => { ev.preventDefault(); patch({ name: name.value.trim(), room: room.value.trim(), inbox: false }); };
  form.querySelector("button.quiet").onclick = () => patch({ ignored: true });
  return form;
}

function drawInbox() {
  const waiting = [...devices.values()].filter(inInbox).sort((a, b) => a.name.localeCompare(b.name));
  inboxRoot.hidden = waiting.length === 0;
  inboxRoot.querySelector("h2").textContent = `New devices (${waiting.length})`;
  inboxList.replaceChildren(...waiting.map(inboxItem));
  const ignored = [...devices.values()].filter((d) => d.ignored);
  ignoredRoot.hidden = ignored.length === 0;
  ignoredRoot.querySelector("summary").textContent = `Ignored devices (${ignored.length})`;
  ignoredRoot.querySelector("ul").replaceChildren(...ignored.map((d) =>
    el("li", {}, el("a", { href: `#/device/${encodeURIComponent(d.id)}`, text: d.name }))));
  document.getElementById("room-names").replaceChildren(...roomNames().map((r) => el("option", { value: r })));
}

let summaryFrame = 0;
function drawSummary() {
  if (summaryFrame) return;
  summaryFrame = requestAnimationFrame(() => {
    summaryFrame = 0;
    let online = 0;
    for (const d of devices.values()) if (d.online) online++;
    summary.textContent = `${devices.size} ${devices.size === 1 ? "device" : "devices"} · ${online} online`;
  });
}

/** A snapshot after a reconnect: redraw what changed, keep every card that is still right. */
function resync() {
  for (const id of [...cards.keys()]) {
    const dev = devices.get(id);
    if (!dev || !onHome(dev)) unplace(id);
  }
  for (const dev of devices.values()) {
    const c = cards.get(dev.id);
    if (c && c.sig === signature(dev)) {
      c.update(dev.state);
      c.showAvailability();
    } else if (onHome(dev)) {
      showDevice(dev);
    }
  }
  drawInbox();
  drawSummary();
}

/** Wire the home view to the store. */
export function mountHome(root) {
  inboxList = el("div", { class: "inbox-list" });
  inboxRoot = el("section", { id: "inbox", "aria-labelledby": "inbox-title", hidden: true },
    el("h2", { id: "inbox-title", text: "New devices" }),
    el("p", { class: "hint", text: "Seen for the first time: give each a name and a room, or ignore it." }), inboxList);
  roomsRoot = el("div", { id: "rooms" });
  ignoredRoot = el("details", { class: "ignored", hidden: true }, el("summary"), el("ul"));
  root.append(inboxRoot, roomsRoot, ignoredRoot, el("datalist", { id: "room-names" }));
  summary = document.getElementById("summary");

  on("snapshot", () => {
    if (cards.size) return resync();
    cards.clear();
    rooms.clear();
    roomsRoot.replaceChildren();
    // first paint: build every card off-document, then insert each room once
    const byRoom = new Map();
    for (const dev of devices.values()) {
      if (!onHome(dev)) continue;
      const c = buildCard(dev);
      cards.set(dev.id, c);
      if (!byRoom.has(c.room)) byRoom.set(c.room, []);
      byRoom.get(c.room).push(c);
    }
    for (const room of [...byRoom.keys()].sort((a, b) => (a === UNASSIGNED) - (b === UNASSIGNED) || a.localeCompare(b))) {
      const list = byRoom.get(room).sort((a, b) => a.name.localeCompare(b.name));
      roomSection(room).grid.append(...list.map((c) => c.node));
    }
    drawInbox();
    drawSummary();
  });
  on("state", (id, changed) => { const c = cards.get(id); if (c) c.update(changed); });
  on("availability", (dev) => { const c = cards.get(dev.id); if (c) c.showAvailability(); drawSummary(); });
  on("added", (dev) => { showDevice(dev); drawInbox(); drawSummary(); });
  on("updated", (dev, before) => {
    showDevice(dev);
    if (inInbox(dev) !== inInbox(before) || dev.ignored !== before.ignored || dev.room !== before.room) drawInbox();
  });
  on("removed", (id) => { unplace(id); drawInbox(); drawSummary(); });
  // "last seen" hints age without any event
  setInterval(() => { for (const c of cards.values()) if (c.sensor || c.node.classList.contains("offline")) c.showAvailability(); }, 30000);
}
