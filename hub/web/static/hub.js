// The household page: rooms and devices, controls generated from each device's exposes, live over
// the WebSocket. No framework: one file, no build step.
"use strict";

const ACCESS = { STATE: 1, SET: 2, GET: 4 };
const devices = new Map();   // id -> device JSON
const cards = new Map();     // id -> {el, controls: Map(name -> update fn)}
let token = "";

function readToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    localStorage.setItem("hub-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
  return localStorage.getItem("hub-token") || "";
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json", ...(options.headers || {}) } });
  if (r.status === 401) { showLogin(); throw new Error("not logged in"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(body.error || r.statusText), { status: r.status, body });
  return body;
}

function showLogin() {
  document.getElementById("login").hidden = false;
  document.getElementById("rooms").hidden = true;
}

function fmt(v, e) {
  if (v === undefined || v === null) return "–";
  if (e.type === "binary") return v ? "yes" : "no";
  if (e.type === "numeric") {
    const n = e.integer ? v : Math.round(v * 10) / 10;
    return `${n}${e.unit ? " " + e.unit : ""}`;
  }
  return String(v);
}

async function send(id, values, el) {
  el.classList.remove("failed");
  el.classList.add("busy");
  try {
    const r = await api(`/api/devices/${encodeURIComponent(id)}/set`, { method: "POST", body: JSON.stringify(values) });
    applyState(id, r.state);
  } catch (err) {
    el.classList.add("failed");
    el.title = err.message;
    const dev = devices.get(id);
    if (dev) renderCard(dev);  // snap the control back to the confirmed state
  } finally {
    el.classList.remove("busy");
  }
}

function control(dev, e) {
  const row = document.createElement("div");
  row.className = "row" + (e.category === "diagnostic" ? " diagnostic" : "");
  row.dataset.expose = e.name;
  const label = document.createElement("label");
  label.textContent = e.label || e.name;
  row.append(label);
  const settable = (e.access & ACCESS.SET) !== 0;
  let update;
  if (e.type === "action") {
    const box = document.createElement("span");
    box.className = "actions";
    for (const v of e.values) {
      const b = document.createElement("button");
      b.textContent = v;
      b.onclick = () => send(dev.id, { [e.name]: v }, b);
      box.append(b);
    }
    row.append(box);
    update = () => {};
  } else if (e.type === "binary" && settable) {
    const sw = document.createElement("button");
    sw.className = "switch";
    sw.setAttribute("role", "switch");
    sw.setAttribute("aria-label", `${dev.name} ${e.label || e.name}`);
    sw.onclick = () => send(dev.id, { [e.name]: sw.getAttribute("aria-checked") !== "true" }, sw);
    row.append(sw);
    update = (v) => sw.setAttribute("aria-checked", v ? "true" : "false");
  } else if (e.type === "numeric" && settable && e.value_min !== undefined && e.value_max !== undefined) {
    const input = document.createElement("input");
    input.type = "range";
    input.min = e.value_min; input.max = e.value_max; input.step = e.value_step || "any";
    input.setAttribute("aria-label", `${dev.name} ${e.label || e.name}`);
    const out = document.createElement("span");
    out.className = "value";
    input.oninput = () => { out.textContent = fmt(Number(input.value), e); };
    input.onchange = () => send(dev.id, { [e.name]: Number(input.value) }, input);
    row.append(input, out);
    update = (v) => { if (document.activeElement !== input && v !== undefined) input.value = v; out.textContent = fmt(v, e); };
  } else if (e.type === "enum" && settable) {
    const sel = document.createElement("select");
    sel.setAttribute("aria-label", `${dev.name} ${e.label || e.name}`);
    for (const v of e.values) sel.append(new Option(v, v));
    sel.onchange = () => send(dev.id, { [e.name]: sel.value }, sel);
    row.append(sel);
    update = (v) => { if (v !== undefined) sel.value = v; };
  } else if (e.type === "color" && settable) {
    const input = document.createElement("input");
    input.type = "color";
    input.setAttribute("aria-label", `${dev.name} ${e.label || e.name}`);
    input.onchange = () => send(dev.id, { [e.name]: input.value }, input);
    row.append(input);
    update = (v) => { if (v) input.value = v; };
  } else if (e.type === "text" && settable) {
    const form = document.createElement("form");
    const input = document.createElement("input");
    input.setAttribute("aria-label", `${dev.name} ${e.label || e.name}`);
    const b = document.createElement("button");
    b.textContent = "Set";
    form.append(input, b);
    form.onsubmit = (ev) => { ev.preventDefault(); send(dev.id, { [e.name]: input.value }, input); };
    row.append(form);
    update = (v) => { if (document.activeElement !== input && v !== undefined) input.value = v; };
  } else {
    const out = document.createElement("span");
    out.className = "value";
    row.append(out);
    update = (v) => { out.textContent = fmt(v, e); };
  }
  return { row, update };
}

function renderCard(dev) {
  let entry = cards.get(dev.id);
  if (!entry) {
    const el = document.getElementById("device-card").content.firstElementChild.cloneNode(true);
    el.dataset.id = dev.id;
    entry = { el, controls: new Map(), exposesKey: "" };
    cards.set(dev.id, entry);
  }
  const { el } = entry;
  el.querySelector(".name").textContent = dev.name;
  el.classList.toggle("offline", !dev.online);
  el.querySelector(".status").textContent = dev.online ? (dev.model || "") : "offline";
  const err = el.querySelector(".error");
  err.hidden = !dev.error;
  err.textContent = dev.error || "";
  const key = JSON.stringify(dev.exposes);
  if (key !== entry.exposesKey) {
    entry.exposesKey = key;
    entry.controls.clear();
    const box = el.querySelector(".controls");
    box.replaceChildren();
    const ordered = [...dev.exposes].sort((a, b) => (a.category === "diagnostic") - (b.category === "diagnostic"));
    for (const e of ordered) {
      const c = control(dev, e);
      entry.controls.set(e.name, c.update);
      box.append(c.row);
    }
  }
  for (const [name, update] of entry.controls) update(dev.state[name]);
  return el;
}

function layout() {
  const rooms = new Map();
  for (const dev of devices.values()) {
    const room = dev.room || "Unassigned";
    if (!rooms.has(room)) rooms.set(room, []);
    rooms.get(room).push(dev);
  }
  const main = document.getElementById("rooms");
  const sections = [];
  for (const room of [...rooms.keys()].sort((a, b) => (a === "Unassigned") - (b === "Unassigned") || a.localeCompare(b))) {
    const sec = document.createElement("section");
    sec.className = "room";
    sec.dataset.room = room;
    const h = document.createElement("h2");
    h.textContent = room;
    const grid = document.createElement("div");
    grid.className = "grid";
    for (const dev of rooms.get(room).sort((a, b) => a.name.localeCompare(b.name))) grid.append(renderCard(dev));
    sec.append(h, grid);
    sections.push(sec);
  }
  main.replaceChildren(...sections);
  const online = [...devices.values()].filter((d) => d.online).length;
  document.getElementById("summary").textContent = `${devices.size} devices · ${online} online`;
}

function applyState(id, state) {
  const dev = devices.get(id);
  if (!dev) return;
  Object.assign(dev.state, state);
  renderCard(dev);
}

function onEvent(ev) {
  switch (ev.type) {
    case "snapshot":
      devices.clear();
      for (const d of ev.devices) devices.set(d.id, d);
      layout();
      loadMedia();
      break;
    case "sync_progress":
      onSyncProgress(ev);
      break;
    case "device_added":
    case "device_updated": {
      const before = devices.get(ev.device.id);
      devices.set(ev.device.id, ev.device);
      if (!before || before.room !== ev.device.room || before.name !== ev.device.name) layout();
      else renderCard(ev.device);
      break;
    }
    case "state":
      applyState(ev.id, ev.state);
      break;
    case "availability": {
      const dev = devices.get(ev.id);
      if (dev) { dev.online = ev.online; renderCard(dev); layout(); }
      break;
    }
  }
}

// -- media library ----------------------------------------------------------------------

function size(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function players() {
  return [...devices.values()].filter((d) => d.exposes.some((e) => e.name === "media_url"));
}

async function loadMedia() {
  let page;
  try { page = await api("/api/media?limit=500"); } catch { return; }
  const section = document.getElementById("media");
  section.hidden = false;
  const body = document.querySelector("#media-list tbody");
  body.replaceChildren(...page.items.map((m) => {
    const tr = document.createElement("tr");
    tr.dataset.id = m.id;
    const cells = [m.path, m.kind || m.media_type || "", size(m.size),
                   m.duration_ms ? `${Math.round(m.duration_ms / 1000)} s` : ""];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i >= 2) td.className = "num";
      tr.append(td);
    });
    const td = document.createElement("td");
    for (const p of players()) {
      const b = document.createElement("button");
      b.textContent = `Play on ${p.name}`;
      b.onclick = async () => {
        b.classList.remove("failed"); b.classList.add("busy");
        try { await api(`/api/media/${m.id}/play`, { method: "POST", body: JSON.stringify({ device: p.id }) }); }
        catch (err) { b.classList.add("failed"); b.title = err.message; }
        finally { b.classList.remove("busy"); }
      };
      td.append(b);
    }
    tr.append(td);
    return tr;
  }));
  showSync(await api("/api/media/sync").catch(() => null));
  showCloud();
}

function showSync(st) {
  if (!st) return;
  const text = document.getElementById("sync-status");
  const bar = document.getElementById("sync-bar");
  const p = st.progress || st;
  if (st.linked === false) { text.textContent = "not linked to a cloud"; bar.hidden = true; return; }
  if (p && p.bytes_total) {
    bar.hidden = p.bytes_done >= p.bytes_total;
    bar.max = p.bytes_total; bar.value = p.bytes_done;
    const eta = p.eta_s ? ` · ${Math.ceil(p.eta_s)} s left` : "";
    text.textContent = `${p.phase}: ${p.files_done}/${p.files_total} files · ${size(p.bytes_done)} of ${size(p.bytes_total)}${eta}`;
  } else {
    text.textContent = st.phase ? `sync: ${st.phase}` : "";
  }
}

let mediaReload = null;
function onSyncProgress(ev) {
  showSync(ev);
  clearTimeout(mediaReload);  // files become visible as they finish: refresh the list, gently
  mediaReload = setTimeout(loadMedia, 1000);
}

async function showCloud() {
  let st;
  try { st = await api("/api/cloud"); } catch { return; }
  const form = document.getElementById("link-form");
  const code = document.getElementById("link-code");
  const linked = document.getElementById("linked");
  const link = st.link || {};
  form.hidden = st.linked || link.state === "waiting";
  linked.hidden = !st.linked;
  linked.querySelector("span").textContent = st.linked ? `Linked to ${st.cloud}` : "";
  code.hidden = st.linked || !["waiting", "failed"].includes(link.state);
  if (link.state === "waiting") {
    code.replaceChildren("On your phone, open ", Object.assign(document.createElement("a"),
      { href: link.verification_uri_complete || link.verification_uri, textContent: link.verification_uri, target: "_blank" }),
      " and enter ", Object.assign(document.createElement("strong"), { textContent: link.user_code }));
    setTimeout(showCloud, 2000);  // until the household approves (or the code expires)
  } else if (link.state === "failed") {
    code.textContent = `Linking failed: ${link.error}`;
  }
}

document.getElementById("link-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const cloud = document.getElementById("cloud-url").value.trim();
  try { await api("/api/cloud/link", { method: "POST", body: JSON.stringify({ cloud }) }); }
  catch (err) { document.getElementById("link-code").hidden = false; document.getElementById("link-code").textContent = err.message; }
  showCloud();
};

document.getElementById("unlink").onclick = async () => {
  await api("/api/cloud/link", { method: "DELETE" }).catch(() => {});
  showCloud();
};

document.getElementById("sync-now").onclick = () => api("/api/media/sync", { method: "POST" }).catch(() => {});

function connect(attempt = 0) {
  const pill = document.getElementById("conn");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/ws?batch=1&token=${encodeURIComponent(token)}`);
  ws.onopen = () => { attempt = 0; pill.dataset.state = "live"; pill.textContent = "live"; };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "batch") msg.events.forEach(onEvent); else onEvent(msg);  // one frame per tick
  };
  ws.onclose = (e) => {
    pill.dataset.state = "down";
    pill.textContent = "reconnecting…";
    if (e.code === 1006 && attempt > 2) {
      // maybe the token is wrong: ask the API, which answers 401 clearly
      api("/api/devices").catch(() => {});
    }
    setTimeout(() => connect(attempt + 1), Math.min(500 * 2 ** attempt, 10000));
  };
}

document.getElementById("token-form").onsubmit = (ev) => {
  ev.preventDefault();
  localStorage.setItem("hub-token", document.getElementById("token").value.trim());
  location.reload();
};

token = readToken();
if (!token) showLogin(); else connect();
