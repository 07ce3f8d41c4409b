// The media library as media: posters and thumbnails, kinds as filters, search, "Play on <projector>"
// for what a projector plays, and the cloud's sync progress and errors above it.

import { api, apiBlobUrl } from "./api.js";
import { clock, el, kindOf, size } from "./format.js";
import { devices, on } from "./store.js";

const KINDS = [["", "All"], ["video", "Films"], ["image", "Photos"], ["audio", "Music"], ["document", "Documents"]];
const KIND_WORD = { video: "Film", image: "Photo", audio: "Music", document: "Document" };
const PLAYABLE = new Set(["video", "image", "audio"]);  // a projector shows these; not PDFs

export const mediaById = new Map();
let titleLoad = null;

/** The title of what a player URL (`/media/file/<id>?…`) points at; loads names once if needed. */
export function mediaTitle(url, onLoaded) {
  const m = /\/media\/file\/(\d+)/.exec(url || "");
  if (!m) return url ? "a stream" : "";
  const item = mediaById.get(Number(m[1]));
  if (item) return item.name.replace(/\.[^.]+$/, "");
  if (!titleLoad) titleLoad = loadPage({}).finally(() => { titleLoad = null; });
  titleLoad.then(() => mediaById.has(Number(m[1])) && onLoaded());
  return "…";
}

/** The library's names, for views that show what a scene plays (loaded once per page view). */
export function loadMediaNames() {
  return loadPage({});
}

async function loadPage({ kind = "", q = "" }) {
  const params = new URLSearchParams({ limit: "500" });
  if (kind) params.set("kind", kind);
  if (q) params.set("q", q);
  const page = await api(`/api/media?${params}`);
  for (const m of page.items) mediaById.set(m.id, m);
  return page;
}

export const projectors = () => [...devices.values()].filter((d) => kindOf(d) === "projector" && d.exposes.some((e) => e.name === "media_state"));

const view = { kind: "", q: "", root: null, grid: null, status: null, loaded: false };
const thumbUrls = new Map();  // media id -> object URL, kept for the page's life
const seen = new IntersectionObserver((entries) => {
  for (const en of entries) {
    if (!en.isIntersecting) continue;
    seen.unobserve(en.target);
    loadThumb(en.target);
  }
}, { rootMargin: "200px" });

async function loadThumb(img) {
  const id = Number(img.dataset.media);
  let url = thumbUrls.get(id);
  if (url === undefined) {
    url = await apiBlobUrl(img.dataset.src).catch(() => null);
    thumbUrls.set(id, url);
  }
  if (url) { img.src = url; img.closest(".poster").classList.add("has-thumb"); }
}

function card(m) {
  const kind = KIND_WORD[m.kind] || "File";
  const img = el("img", { alt: "", "data-media": String(m.id), "data-src": m.thumb || "", loading: "lazy" });
  const poster = el("div", { class: `poster kind-${m.kind || "file"}`, "aria-hidden": "true" }, el("span", { class: "kind-mark", text: kind }), img);
  if (m.thumb) seen.observe(img);
  const meta = [kind, m.duration_ms ? clock(m.duration_ms) : null, size(m.size)].filter(Boolean).join(" · ");
  const buttons = el("div", { class: "media-actions" });
  if (PLAYABLE.has(m.kind)) {
    for (const p of projectors()) {
      const b = el("button", { type: "button", text: `Play on ${p.name}`, "aria-label": `Play ${m.name} on ${p.name}` });
      b.onclick = () => play(m, p, b);
      buttons.append(b);
    }
  }
  return el("li", { class: "media-item", "data-id": String(m.id) }, poster,
    el("div", { class: "media-text" }, el("h3", { class: "media-name", text: m.name, title: m.path }), el("p", { class: "meta", text: meta })),
    buttons);
}

async function play(m, p, b) {
  b.setAttribute("aria-busy", "true");
  b.classList.remove("failed");
  try {
    await api(`/api/media/${m.id}/play`, { method: "POST", body: { device: p.id } });
    view.status.replaceChildren(`Playing ${m.name} on ${p.name} — `, el("a", { href: `#/device/${encodeURIComponent(p.id)}`, text: "Now playing" }));
  } catch (err) {
    b.classList.add("failed");
    view.status.textContent = `Could not play ${m.name} on ${p.name}: ${err.message}`;
  } finally {
    b.removeAttribute("aria-busy");
  }
}

async function reload() {
  let page;
  try { page = await loadPage(view); } catch { return; }
  view.loaded = true;
  view.grid.replaceChildren(...page.items.map(card));
  view.count.textContent = page.total === 1 ? "1 item" : `${page.total} items`;
  view.empty.hidden = page.items.length > 0;
}

// -- sync and the cloud link ----------------------------------------------------------------

function showSync(st) {
  if (!st || !view.root) return;
  const p = st.progress || (st.bytes_total !== undefined ? st : null);
  const { syncText, syncBar, syncError } = view;
  if (st.linked === false) { syncText.textContent = "Not linked to a cloud"; syncBar.hidden = true; return; }
  if (p && p.bytes_total) {
    const running = p.bytes_done < p.bytes_total;
    syncBar.hidden = !running;
    syncBar.max = p.bytes_total;
    syncBar.value = p.bytes_done;
    const eta = running && p.eta_s ? ` · ${Math.ceil(p.eta_s)} s left` : "";
    syncText.textContent = running
      ? `Syncing: ${p.files_done} of ${p.files_total} files · ${size(p.bytes_done)} of ${size(p.bytes_total)}${eta}`
      : `Up to date: ${p.files_total} files · ${size(p.bytes_total)}`;
    syncBar.setAttribute("aria-valuetext", `${size(p.bytes_done)} of ${size(p.bytes_total)}`);
  } else if (st.phase) {
    syncText.textContent = st.phase === "idle" ? "Up to date" : `Sync: ${st.phase}`;
  }
  const errors = [];
  if (st.last_error) errors.push(st.last_error);
  for (const f of (st.last_report && st.last_report.failed) || []) errors.push(typeof f === "string" ? f : `${f.path || ""} ${f.error || ""}`.trim());
  if (p && p.files_failed) errors.push(`${p.files_failed} file(s) failed to sync`);
  syncError.replaceChildren(...errors.map((t) => el("li", { text: t })));
  syncError.hidden = errors.length === 0;
}

async function showCloud() {
  let st;
  try { st = await api("/api/cloud"); } catch { return; }
  const { linkForm, linkCode, linked } = view;
  const link = st.link || {};
  linkForm.hidden = st.linked || link.state === "waiting";
  linked.hidden = !st.linked;
  linked.querySelector("span").textContent = st.linked ? `Linked to ${st.cloud}` : "";
  linkCode.hidden = st.linked || !["waiting", "failed"].includes(link.state);
  if (link.state === "waiting") {
    linkCode.replaceChildren("On your phone, open ",
      el("a", { href: link.verification_uri_complete || link.verification_uri, text: link.verification_uri, target: "_blank", rel: "noopener" }),
      " and enter ", el("strong", { text: link.user_code }));
    setTimeout(showCloud, 2000);  // until the household approves (or the code expires)
  } else if (link.state === "failed") {
    linkCode.textContent = `Linking failed: ${link.error}`;
  }
}

let reloadTimer = 0;
on("sync_progress", (ev) => {
  showSync(ev);
  clearTimeout(reloadTimer);  // files appear as they finish: refresh the list, gently
  if (view.loaded) reloadTimer = setTimeout(reload, 1000);
});

/** Build the library view once, into `root`. */
export function mountLibrary(root) {
  view.root = root;
  const filters = el("div", { class: "filters", role: "group", "aria-label": "Kind" });
  for (const [kind, word] of KINDS) {
    const b = el("button", { type: "button", text: word, "aria-pressed": String(kind === view.kind), "data-kind": kind });
    b.onclick = () => {
      view.kind = kind;
      for (const x of filters.children) x.setAttribute("aria-pressed", String(x === b));
      reload();
    };
    filters.append(b);
  }
  const search = el("input", { type: "search", "aria-label": "Search the library", placeholder: "Search" });
  let t = 0;
  search.oninput = () => { clearTimeout(t); t = setTimeout(() => { view.q = search.value.trim(); reload(); }, 250); };
  view.syncText = el("span", { class: "hint", role: "status" });
  view.syncBar = el("progress", { max: "1", value: "0", hidden: true, "aria-label": "Sync progress" });
  view.syncError = el("ul", { class: "alerts", hidden: true });
  const cloudUrl = el("input", { id: "cloud-url", type: "url", placeholder: "https://cloud.example", required: true });
  view.linkForm = el("form", { id: "link-form", hidden: true }, el("label", { for: "cloud-url", text: "Operator cloud" }), cloudUrl, el("button", { text: "Link" }));
  view.linkCode = el("p", { id: "link-code", hidden: true, role: "status" });
  view.linked = el("p", { id: "linked", hidden: true }, el("span"), " ", el("button", { type: "button", text: "Unlink" }));
  view.linkForm.onsubmit = async (ev) => {
    ev.preventDefault();
    try { await api("/api/cloud/link", { method: "POST", body: { cloud: cloudUrl.value.trim() } }); }
    catch (err) { view.linkCode.hidden = false; view.linkCode.textContent = err.message; }
    showCloud();
  };
  view.linked.querySelector("button").onclick = async () => { await api("/api/cloud/link", { method: "DELETE" }).catch(() => {}); showCloud(); };
  const syncNow = el("button", { type: "button", text: "Sync now" });
  syncNow.onclick = () => api("/api/media/sync", { method: "POST" }).catch((err) => { view.syncText.textContent = err.message; });
  view.status = el("p", { class: "play-status", role: "status" });
  view.count = el("span", { class: "hint" });
  view.grid = el("ul", { class: "media-grid", "aria-label": "Library" });
  view.empty = el("p", { class: "hint", text: "Nothing here yet.", hidden: true });
  root.append(
    el("header", { class: "view-head" }, el("h2", { text: "Library" }), view.count),
    el("section", { class: "sync", "aria-label": "Sync" }, el("div", { class: "sync-line" }, view.syncText, syncNow), view.syncBar, view.syncError,
      view.linkForm, view.linkCode, view.linked),
    el("div", { class: "toolbar" }, filters, search),
    view.status, view.grid, view.empty);
}

/** Show fresh data each time the view opens; re-draw Play buttons when projectors come and go. */
export async function openLibrary() {
  await Promise.all([reload(), api("/api/media/sync").then(showSync).catch(() => {}), showCloud()]);
}
