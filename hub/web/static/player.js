// The projector as one player: power with warm-up and cool-down, input, mute, volume, lamp hours,
// errors in words, and "Now playing" with position, pause, stop (and seek when the player allows it).

import { actionButtons, enumControl, send, sliderControl, switchControl } from "./controls.js";
import { clock, el, expose, settable } from "./format.js";
import { mediaTitle } from "./library.js";

const POWER_WORDS = { off: "Off", warming: "Warming up…", on: "On", cooling: "Cooling down…" };
const PARTS = { fan: "Fan", lamp: "Lamp", temperature: "Temperature", cover: "Cover", filter: "Filter", other: "Projector" };

/** Faults as sentences, only those there are: "Lamp needs attention", "Fan has failed". */
export function faults(state) {
  const out = [];
  for (const [part, word] of Object.entries(PARTS)) {
    const v = state[`error_${part}`];
    if (v === "warning") out.push(`${word} needs attention`);
    else if (v === "error") out.push(part === "temperature" ? "Overheating" : `${word} has failed`);
  }
  if (state.media_error) out.push(`Playback: ${state.media_error}`);
  return out;
}

const ticking = new Set();  // players showing a running position, advanced once a second
setInterval(() => { for (const tick of ticking) tick(); }, 1000);

/** A player panel for a projector; `full` adds input, mutes, volume and lamp hours (device page). */
export function player(dev, { full = false } = {}) {
  const updates = new Map();  // expose name -> fn(value)
  const node = el("div", { class: "player", role: "group", "aria-label": `${dev.name} player` });
  const use = (name, c) => { updates.set(name, c.update); return c.node; };

  // power: a switch, and the warm-up/cool-down in words (the switch waits while it runs)
  const power = expose(dev, "power");
  const powerWords = el("span", { class: "power-state", role: "status" });
  if (power) {
    const sw = switchControl(dev, power, `${dev.name}: Power`);
    node.append(el("div", { class: "row" }, el("span", { class: "label", text: "Power" }), el("span", { class: "inline" }, powerWords, sw.node)));
    updates.set("power", sw.update);
    updates.set("power_state", (v) => {
      powerWords.textContent = POWER_WORDS[v] || "";
      const moving = v === "warming" || v === "cooling";
      sw.node.setAttribute("aria-disabled", moving ? "true" : "false");
      sw.node.classList.toggle("transition", moving);
    });
  }

  const alerts = el("ul", { class: "alerts", role: "alert", hidden: true });
  node.append(alerts);

  // now playing
  const title = el("span", { class: "title" });
  const bar = el("progress", { max: "1", value: "0", "aria-label": `${dev.name}: position` });
  const time = el("span", { class: "time" });
  const playPause = el("button", { type: "button", class: "icon" });
  const stop = el("button", { type: "button", class: "icon", text: "■", "aria-label": `Stop ${dev.name}` });
  const strip = el("section", { class: "now-playing", "aria-label": `Now playing on ${dev.name}` },
    el("div", { class: "np-head" }, el("span", { class: "np-label", text: "Now playing" }), title),
    el("div", { class: "np-bar" }, bar, time), el("div", { class: "np-buttons" }, playPause, stop));
  const hasPlayer = !!expose(dev, "media_state");
  if (hasPlayer) node.append(strip);
  let pos = 0, posAt = 0, playing = false;
  const drawTime = () => {
    const s = dev.state, dur = s.media_duration || 0;
    const p = playing ? Math.min(dur || Infinity, pos + (performance.now() - posAt)) : pos;
    bar.max = dur || 1;
    bar.value = Math.min(p, dur || 0);
    const text = `${clock(p)} / ${clock(dur)}`;
    time.textContent = text;
    bar.setAttribute("aria-valuetext", `${clock(p)} of ${clock(dur)}`);
  };
  const tick = () => { if (!node.isConnected) { ticking.delete(tick); return; } drawTime(); };
  const drawPlayer = () => {
    const s = dev.state;
    playing = s.media_state === "playing";
    const active = playing || s.media_state === "paused";
    strip.hidden = !active;
    title.textContent = active ? mediaTitle(s.media_url, () => drawPlayer()) : "";
    playPause.textContent = playing ? "❚❚" : "▶";
    playPause.setAttribute("aria-label", `${playing ? "Pause" : "Play"} ${dev.name}`);
    drawTime();
    if (playing) ticking.add(tick); else ticking.delete(tick);
  };
  playPause.onclick = () => send(dev.id, { media_command: playing ? "pause" : "play" }, playPause);
  stop.onclick = () => send(dev.id, { media_command: "stop" }, stop);
  const position = expose(dev, "media_position");
  if (position && settable(position)) {  // seek, when the player takes a position
    const seek = sliderControl(dev, { ...position, value_max: dev.state.media_duration || 0 }, `${dev.name}: seek`);
    strip.append(seek.node);
    updates.set("media_duration", (v) => { seek.node.querySelector("input").max = String(v || 0); });
  }
  for (const n of ["media_state", "media_url", "media_duration"]) updates.set(n, drawPlayer);
  updates.set("media_position", (v) => { pos = v || 0; posAt = performance.now(); drawTime(); });

  // volume on the card too: the one thing reached for mid-film
  const vol = expose(dev, "media_volume");
  const steps = expose(dev, "volume");
  if (vol && settable(vol)) node.append(el("div", { class: "row" }, el("span", { class: "label", text: "Volume" }), use("media_volume", sliderControl(dev, vol, `${dev.name}: Volume`))));
  else if (steps) node.append(el("div", { class: "row" }, el("span", { class: "label", text: "Volume" }), actionButtons(dev, steps).node));

  if (full) {
    const more = el("div", { class: "player-more" });
    const input = expose(dev, "input");
    if (input && settable(input)) more.append(el("div", { class: "row" }, el("span", { class: "label", text: "Input" }), use("input", enumControl(dev, input, `${dev.name}: Input`))));
    for (const [name, word] of [["video_mute", "Picture mute"], ["audio_mute", "Sound mute"], ["freeze", "Freeze"]]) {
      const e = expose(dev, name);
      if (e && settable(e)) more.append(el("div", { class: "row" }, el("span", { class: "label", text: word }), use(name, switchControl(dev, e, `${dev.name}: ${word}`))));
    }
    const lamp = el("span", { class: "value" });
    if (expose(dev, "lamp_hours")) {
      more.append(el("div", { class: "row" }, el("span", { class: "label", text: "Lamp hours" }), lamp));
      updates.set("lamp_hours", (v) => { lamp.textContent = v === undefined ? "–" : `${v} h`; });
    }
    node.append(more);
  }

  const drawAlerts = () => {
    const list = faults(dev.state);
    alerts.replaceChildren(...list.map((t) => el("li", { text: t })));
    alerts.hidden = list.length === 0;
  };
  for (const e of dev.exposes) if (e.name.startsWith("error_") || e.name === "media_error") updates.set(e.name, drawAlerts);

  const update = (changed) => {
    const seen = new Set();
    for (const [name, v] of Object.entries(changed)) {
      const fn = updates.get(name);
      if (fn && !seen.has(fn)) { seen.add(fn); fn(v); }
    }
  };
  update(dev.state);
  drawAlerts();
  return { node, update };
}
