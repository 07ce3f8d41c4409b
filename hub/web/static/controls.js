// One control per expose, each a real form element with an accessible name; `update(value)` moves it.

import { api } from "./api.js";
import { applyState, redraw } from "./store.js";
import { el, fmt, label, settable } from "./format.js";

/**
 * Send a partial state; the control shows busy until the device confirms. A 504 is not a failure:
 * the device may still apply it, so the control stays pending until its own state settles it.
 */
export async function send(id, values, node) {
  node.classList.remove("failed");
  node.setAttribute("aria-busy", "true");
  node.removeAttribute("title");
  try {
    const r = await api(`/api/devices/${encodeURIComponent(id)}/set`, { method: "POST", body: values });
    applyState(id, r.state);
    node.removeAttribute("aria-busy");
    return true;
  } catch (err) {
    if (err.status === 504) {
      node.title = "sent; waiting for the device to confirm";
      return false;
    }
    node.removeAttribute("aria-busy");
    node.classList.add("failed");
    node.title = err.message;
    redraw(id, Object.keys(values));  // snap back to what the device last said
    return false;
  }
}

const settle = (node) => node.removeAttribute("aria-busy");

export function switchControl(dev, e, name = `${dev.name}: ${label(e)}`) {
  const sw = el("button", { type: "button", class: "switch", role: "switch", "aria-checked": "false", "aria-label": name });
  sw.onclick = () => send(dev.id, { [e.name]: sw.getAttribute("aria-checked") !== "true" }, sw);
  return { node: sw, update: (v) => { settle(sw); sw.setAttribute("aria-checked", v ? "true" : "false"); } };
}

export function sliderControl(dev, e, name = `${dev.name}: ${label(e)}`) {
  const input = el("input", {
    type: "range", min: String(e.value_min), max: String(e.value_max), step: String(e.value_step || "any"),
    "aria-label": name,
  });
  const out = el("output", { class: "value", "aria-hidden": "true" });
  const show = (v) => { const t = fmt(v, e); out.textContent = t; input.setAttribute("aria-valuetext", t); };
  input.oninput = () => show(Number(input.value));
  input.onchange = () => send(dev.id, { [e.name]: Number(input.value) }, input);
  const node = el("span", { class: "slider" }, input, out);
  return {
    node,
    update: (v) => {
      settle(input);
      if (v === undefined || v === null) return show(v);
      if (document.activeElement !== input) input.value = v;  // don't yank it from under a finger
      show(v);
    },
  };
}

export function enumControl(dev, e, name = `${dev.name}: ${label(e)}`) {
  const sel = el("select", { "aria-label": name }, ...e.values.map((v) => new Option(v, v)));
  sel.onchange = () => send(dev.id, { [e.name]: sel.value }, sel);
  return { node: sel, update: (v) => { settle(sel); if (v !== undefined) sel.value = v; } };
}

export function actionButtons(dev, e) {
  const box = el("span", { class: "actions", role: "group", "aria-label": `${dev.name}: ${label(e)}` });
  for (const v of e.values) {
    const word = v.charAt(0).toUpperCase() + v.slice(1);
    const b = el("button", { type: "button", text: word, "aria-label": `${word} ${dev.name}` });
    b.onclick = async () => { await send(dev.id, { [e.name]: v }, b); settle(b); };  // no state to wait for
    box.append(b);
  }
  return { node: box, update: () => {} };
}

export function colourControl(dev, e, name = `${dev.name}: ${label(e)}`) {
  const input = el("input", { type: "color", "aria-label": name });
  input.onchange = () => send(dev.id, { [e.name]: input.value }, input);
  return { node: input, update: (v) => { settle(input); if (v) input.value = v; } };
}

export function textControl(dev, e, name = `${dev.name}: ${label(e)}`) {
  const input = el("input", { "aria-label": name });
  const form = el("form", { class: "text-set" }, input, el("button", { text: "Set" }));
  form.onsubmit = (ev) => { ev.preventDefault(); send(dev.id, { [e.name]: input.value }, input); };
  return { node: form, update: (v) => { settle(input); if (document.activeElement !== input && v !== undefined) input.value = v; } };
}

export function readout(e) {
  const out = el("span", { class: "value" });
  return { node: out, update: (v) => { out.textContent = fmt(v, e); } };
}

/** The control a settable expose gets, or a read-out. */
export function controlFor(dev, e) {
  if (e.type === "action") return actionButtons(dev, e);
  if (!settable(e)) return readout(e);
  if (e.type === "binary") return switchControl(dev, e);
  if (e.type === "numeric" && e.value_min !== undefined && e.value_max !== undefined) return sliderControl(dev, e);
  if (e.type === "enum") return enumControl(dev, e);
  if (e.type === "color") return colourControl(dev, e);
  if (e.type === "text") return textControl(dev, e);
  return readout(e);
}

/** A labelled row: "Brightness  [----o--] 40 %". */
export function row(e, control) {
  return el("div", { class: "row", "data-expose": e.name }, el("span", { class: "label", text: label(e) }), control.node);
}
