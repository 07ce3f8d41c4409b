// Scenes ("Movie night"): made from the current state of chosen devices or by editing values, never
// by actuating anything; run with one tap, with each device's result (confirmed, not confirmed, offline).

import { api } from "./api.js";
import { el, expose, fmt, label, placement, settable } from "./format.js";
import { loadMediaNames, mediaById, projectors } from "./library.js";
import { devices, on } from "./store.js";

const RESULT_WORDS = { confirmed: "Confirmed", not_confirmed: "Not confirmed", offline: "Offline", error: "Error" };
let root, list, scenes = [];
const resultBoxes = new Map();  // scene id -> element showing the last run's results

const devName = (id) => (devices.get(id) || { name: id }).name;

/** The values a scene would set on a device: its settable household values, as they are now. */
export function capture(dev) {
  const out = {};
  for (const e of dev.exposes) {
    if (!settable(e) || e.type === "action" || placement(e) !== "control" || e.name.startsWith("media_")) continue;
    if (dev.state[e.name] !== undefined) out[e.name] = dev.state[e.name];
  }
  return out;
}

function showResults(sceneId, results) {
  const box = resultBoxes.get(String(sceneId));
  if (!box) return;
  const items = Object.entries(results || {}).map(([id, r]) =>
    el("li", { class: `result ${r.status}`, "data-device": id },
      el("span", { text: devName(id) }), " — ",
      el("strong", { text: RESULT_WORDS[r.status] || r.status }), r.error ? ` (${r.error})` : ""));
  box.replaceChildren(...items);
  box.hidden = items.length === 0;
}

async function run(scene, button) {
  button.setAttribute("aria-busy", "true");
  const box = resultBoxes.get(String(scene.id));
  box.hidden = false;
  box.replaceChildren(el("li", { text: "Running…" }));
  try {
    const r = await api(`/api/scenes/${encodeURIComponent(scene.id)}/run`, { method: "POST" });
    showResults(scene.id, r.results);
    box.focus();
  } catch (err) {
    box.replaceChildren(el("li", { class: "result error", text: `Could not run: ${err.message}` }));
  } finally {
    button.removeAttribute("aria-busy");
  }
}

function summary(scene) {
  const parts = Object.entries(scene.states || {}).map(([id, st]) => {
    const dev = devices.get(id);
    const words = Object.entries(st).map(([k, v]) => {
      const e = dev && expose(dev, k);
      return e ? `${label(e).toLowerCase()} ${e.type === "binary" ? (v ? "on" : "off") : fmt(v, e)}` : `${k} ${v}`;
    });
    return `${devName(id)}: ${words.join(", ")}`;
  });
  if (scene.play && scene.play.media) {
    const m = mediaById.get(Number(scene.play.media));
    parts.push(`then play ${m ? m.name : `item ${scene.play.media}`} on ${devName(scene.play.device)}`);
  }
  return parts;
}

function sceneCard(scene) {
  const id = String(scene.id);
  const results = el("ul", { class: "results", "aria-label": `${scene.name} results`, "aria-live": "polite", tabindex: "-1", hidden: true });
  resultBoxes.set(id, results);
  const runB = el("button", { type: "button", class: "primary", text: `Run ${scene.name}` });
  runB.onclick = () => run(scene, runB);
  const editB = el("button", { type: "button", text: "Edit", "aria-label": `Edit ${scene.name}` });
  editB.onclick = () => openEditor(scene);
  const delB = el("button", { type: "button", class: "quiet", text: "Delete", "aria-label": `Delete ${scene.name}` });
  delB.onclick = async () => {
    if (!confirm(`Delete the scene ${scene.name}?`)) return;
    await api(`/api/scenes/${encodeURIComponent(scene.id)}`, { method: "DELETE" }).catch(() => {});
    load();
  };
  return el("article", { class: "scene card", "data-scene": id, "aria-label": scene.name },
    el("h3", { text: scene.name }),
    el("ul", { class: "scene-states" }, ...summary(scene).map((t) => el("li", { text: t }))),
    el("div", { class: "buttons" }, runB, editB, delB), results);
}

async function load() {
  try { scenes = await api("/api/scenes"); } catch (err) { list.replaceChildren(el("p", { class: "hint", text: `Scenes are not available: ${err.message}` })); return; }
  // a scene that plays a film names it, and the editor offers the films: both need the library
  if (!mediaById.size) await loadMediaNames().catch(() => {});
  list.replaceChildren(...scenes.map(sceneCard));
  if (!scenes.length) list.append(el("p", { class: "hint", text: "No scenes yet." }));
}

// -- making and editing, with form fields only: nothing is sent to a device ----------------------

function field(dev, e, value, scope) {
  const name = `${dev.name}: ${label(e)}`;
  if (e.type === "binary") {
    const b = el("button", { type: "button", role: "switch", class: "switch", "aria-checked": String(!!value), "aria-label": `${scope} ${name}` });
    b.onclick = () => b.setAttribute("aria-checked", String(b.getAttribute("aria-checked") !== "true"));
    return { node: b, read: () => b.getAttribute("aria-checked") === "true" };
  }
  if (e.type === "enum") {
    const s = el("select", { "aria-label": `${scope} ${name}` }, ...e.values.map((v) => new Option(v, v)));
    s.value = value;
    return { node: s, read: () => s.value };
  }
  if (e.type === "numeric") {
    const i = el("input", { type: "number", value: String(value), step: String(e.value_step || "any"), "aria-label": `${scope} ${name}${e.unit ? ` (${e.unit})` : ""}` });
    if (e.value_min !== undefined) i.min = String(e.value_min);
    if (e.value_max !== undefined) i.max = String(e.value_max);
    return { node: i, read: () => Number(i.value) };
  }
  const i = el("input", { type: e.type === "color" ? "color" : "text", value: String(value ?? ""), "aria-label": `${scope} ${name}` });
  return { node: i, read: () => i.value };
}

function openEditor(scene) {
  const editing = !!scene;
  const dialog = el("dialog", { class: "scene-editor", "aria-labelledby": "scene-editor-title" });
  const nameIn = el("input", { id: "scene-name", required: true, maxlength: "80", value: scene ? scene.name : "" });
  const states = structuredClone(scene ? scene.states : {});
  const rows = el("div", { class: "scene-devices" });
  const readers = new Map();  // device id -> {prop -> read()}
  const scope = "Scene";
  const drawRows = () => {
    readers.clear();
    rows.replaceChildren(...Object.entries(states).map(([id, st]) => {
      const dev = devices.get(id);
      const r = {};
      readers.set(id, r);
      const fields = Object.entries(st).map(([k, v]) => {
        const e = dev && expose(dev, k);
        if (!e) { r[k] = () => v; return el("span", { class: "hint", text: `${k}: ${v}` }); }
        const f = field(dev, e, v, scope);
        r[k] = f.read;
        return el("label", { class: "row" }, el("span", { class: "label", text: label(e) }), f.node);
      });
      const remove = el("button", { type: "button", class: "quiet", text: "Remove", "aria-label": `Remove ${devName(id)} from the scene` });
      remove.onclick = () => { collect(); delete states[id]; drawRows(); };
      return el("fieldset", {}, el("legend", { text: devName(id) }), ...fields, remove);
    }));
  };
  const collect = () => {
    for (const [id, r] of readers) for (const [k, read] of Object.entries(r)) states[id][k] = read();
  };
  // add devices: their state as it is now becomes the starting values
  const pick = el("select", { "aria-label": "Add a device" }, new Option("Add a device…", ""),
    ...[...devices.values()].filter((d) => !d.ignored && Object.keys(capture(d)).length).sort((a, b) => a.name.localeCompare(b.name))
      .map((d) => new Option(`${d.name}${d.room ? ` (${d.room})` : ""}`, d.id)));
  pick.onchange = () => {
    if (!pick.value) return;
    collect();
    states[pick.value] = capture(devices.get(pick.value));
    pick.value = "";
    drawRows();
  };
  const mediaSel = el("select", { "aria-label": "Then play" }, new Option("Nothing", ""),
    ...[...mediaById.values()].filter((m) => m.kind === "video").map((m) => new Option(m.name, String(m.id))));
  const onSel = el("select", { "aria-label": "On projector" }, ...projectors().map((p) => new Option(p.name, p.id)));
  if (scene && scene.play) { mediaSel.value = String(scene.play.media); onSel.value = scene.play.device; }
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const form = el("form", { method: "dialog" },
    el("h2", { id: "scene-editor-title", text: editing ? `Edit ${scene.name}` : "New scene" }),
    el("p", { class: "hint", text: "Saving a scene changes nothing in the house; run it when you want it." }),
    el("label", { for: "scene-name", text: "Name" }), nameIn, rows, pick,
    el("div", { class: "row" }, el("span", { class: "label", text: "Then play" }), mediaSel, onSel),
    err,
    el("div", { class: "buttons" }, el("button", { type: "submit", class: "primary", text: "Save scene" }),
      el("button", { type: "button", class: "quiet", text: "Cancel", onclick: () => dialog.close() })));
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    collect();
    const body = { name: nameIn.value.trim(), states, play: mediaSel.value ? { media: Number(mediaSel.value), device: onSel.value } : null };
    try {
      await api(editing ? `/api/scenes/${encodeURIComponent(scene.id)}` : "/api/scenes", { method: editing ? "PUT" : "POST", body });
      dialog.close();
      load();
    } catch (e) { err.hidden = false; err.textContent = e.message; }
  };
  dialog.append(form);
  dialog.onclose = () => dialog.remove();
  drawRows();
  root.append(dialog);
  dialog.showModal();
}

function captureForm() {
  const nameIn = el("input", { id: "capture-name", required: true, maxlength: "80", placeholder: "Movie night" });
  const boxes = el("div", { class: "device-picks" });
  const draw = () => {
    const byRoom = new Map();
    for (const d of devices.values()) {
      if (d.ignored || !Object.keys(capture(d)).length) continue;
      const r = d.room || "No room";
      if (!byRoom.has(r)) byRoom.set(r, []);
      byRoom.get(r).push(d);
    }
    boxes.replaceChildren(...[...byRoom.keys()].sort().map((r) => el("fieldset", {}, el("legend", { text: r }),
      ...byRoom.get(r).sort((a, b) => a.name.localeCompare(b.name)).map((d) =>
        el("label", { class: "pick" }, el("input", { type: "checkbox", value: d.id }), ` ${d.name}`)))));
  };
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const form = el("form", { class: "panel capture", "aria-labelledby": "capture-title" },
    el("h3", { id: "capture-title", text: "New scene from how things are now" }),
    el("p", { class: "hint", text: "Set the devices the way you like, tick them, and save: nothing is switched." }),
    el("label", { for: "capture-name", text: "Scene name" }), nameIn, boxes, err,
    el("div", { class: "buttons" }, el("button", { type: "submit", class: "primary", text: "Save scene" }),
      el("button", { type: "button", text: "Start from scratch", onclick: () => openEditor(null) })));
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const ids = [...boxes.querySelectorAll("input:checked")].map((i) => i.value);
    if (!ids.length) { err.hidden = false; err.textContent = "Tick at least one device."; return; }
    try {
      await api("/api/scenes", { method: "POST", body: { name: nameIn.value.trim(), from_devices: ids } });
      err.hidden = true;
      nameIn.value = "";
      for (const i of boxes.querySelectorAll("input:checked")) i.checked = false;
      load();
    } catch (e) { err.hidden = false; err.textContent = e.message; }
  };
  return { node: form, draw };
}

let picker;
export function mountScenes(node) {
  root = node;
  list = el("div", { class: "scene-list" });
  picker = captureForm();
  root.append(el("header", { class: "view-head" }, el("h2", { text: "Scenes" })), list, picker.node);
  // the scene may come as its id or as the scene itself
  on("scene_result", (ev) => showResults(ev.scene && typeof ev.scene === "object" ? ev.scene.id : ev.scene, ev.results));
}

export function openScenes() {
  picker.draw();
  load();
}
