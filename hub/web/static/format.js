// Words and numbers for the household: labels, values with units, times, and which exposes show where.

export const ACCESS = { STATE: 1, SET: 2, GET: 4 };

// Plumbing a household never sets by hand; drivers will mark these `category: "config"`.
const PLUMBING = new Set(["media_url", "media_verified"]);

/** Where an expose belongs: "control" (cards, player), "detail" (device page, Details) or "hidden". */
export function placement(e) {
  if (e.category === "config" || PLUMBING.has(e.name)) return "hidden";
  if (e.category === "diagnostic") return "detail";
  return "control";
}

export const settable = (e) => (e.access & ACCESS.SET) !== 0;

const LABELS = { on: "Power", video_mute: "Picture mute", audio_mute: "Sound mute", media_volume: "Volume" };

export function label(e) {
  return LABELS[e.name] || e.label || e.name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

export function expose(dev, name) {
  return dev.exposes.find((e) => e.name === name);
}

/** A value as a person reads it: "21.5 °C", "on", "–" when unknown. */
export function fmt(v, e) {
  if (v === undefined || v === null || v === "") return "–";
  if (e.type === "binary") return v ? "yes" : "no";
  if (e.type === "numeric") {
    const n = e.integer ? Math.round(v) : Math.round(v * 10) / 10;
    return e.unit ? `${n} ${e.unit}` : String(n);
  }
  return String(v);
}

/** "just now", "5 min ago", "3 h ago", "2 days ago" for an epoch-seconds time. */
export function ago(t, now = Date.now() / 1000) {
  if (!t) return "never";
  const s = Math.max(0, now - t);
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

/** "1:05" or "1:02:05" from milliseconds. */
export function clock(ms) {
  const s = Math.max(0, Math.floor((ms || 0) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

export function size(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** What kind of thing a device is, from what it exposes (drivers declare, the page infers). */
export function kindOf(dev) {
  const has = (n) => dev.exposes.some((e) => e.name === n);
  if (has("power_state") || has("media_state")) return "projector";
  if (has("position") && has("action")) return "blind";
  if (has("target_temperature")) return "thermostat";
  if (has("on") && (has("brightness") || has("color"))) return "light";
  if (has("locked")) return "lock";
  if (has("on")) return "plug";
  if (dev.exposes.some((e) => settable(e) && placement(e) === "control")) return "device";  // e.g. a two-relay plug
  return "sensor";
}

/** A light's apparent colour: its colour when set, else its white from the colour temperature. */
export function lightColour(state) {
  const c = state.color;
  if (c && c.toLowerCase() !== "#ffffff") return c;
  if (!state.color_temperature) return c || "#ffffff";
  // Tanner Helland's fit of black-body colour, good enough for a swatch (1000-40000 K)
  const k = 1e6 / state.color_temperature / 100;
  const clamp = (x) => Math.max(0, Math.min(255, Math.round(x)));
  const r = k <= 66 ? 255 : clamp(329.7 * (k - 60) ** -0.1332);
  const g = clamp(k <= 66 ? 99.47 * Math.log(k) - 161.12 : 288.12 * (k - 60) ** -0.0755);
  const b = k >= 66 ? 255 : k <= 19 ? 0 : clamp(138.52 * Math.log(k - 10) - 305.04);
  return `#${[r, g, b].map((x) => x.toString(16).padStart(2, "0")).join("")}`;
}

/** Create an element: el("button", {class: "x", onclick}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node[k] = v;
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}
