// Talking to the hub: every request goes through api(), the live socket through connect().
// Auth lives here alone: the HttpOnly session cookie set by the sign-in page rides along.

/** An error the page can show: the hub's own message, with status and body. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

/** Every request to the hub passes here: the one place that knows how we are signed in. */
async function request(path, opts = {}) {
  const r = await fetch(path, { ...opts, credentials: "same-origin" });
  if (r.status === 401) onUnauthorized();
  return r;
}

/** JSON in, JSON out; a 401 sends the household to sign in. */
export async function api(path, opts = {}) {
  const json = opts.body !== undefined && typeof opts.body !== "string";
  const r = await request(path, {
    ...opts,
    body: json ? JSON.stringify(opts.body) : opts.body,
    headers: { ...(opts.body !== undefined ? { "Content-Type": "application/json" } : {}), ...(opts.headers || {}) },
  });
  if (r.status === 401) throw new ApiError(401, { error: "not signed in" });
  if (r.status === 204) return null;
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/** An image the API serves (thumbnails), as an object URL; null when there is none. */
export async function apiBlobUrl(path) {
  const r = await request(path);
  return r.ok ? URL.createObjectURL(await r.blob()) : null;
}

/** The sign-in page, coming back here afterwards. */
export function signIn() {
  location.replace(`/login?next=${encodeURIComponent(location.pathname + location.hash)}`);
}

export async function signOut() {
  await api("/api/auth/logout", { method: "POST" }).catch(() => {});
  location.assign("/login");
}

/** The live socket, reconnecting with backoff; `onStatus("live" | "down")`. */
export function connect(onEvent, onStatus) {
  let attempt = 0;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    // the session cookie signs it in; batch=1: what piled up since the last send comes as one frame
    const ws = new WebSocket(`${proto}://${location.host}/api/ws?batch=1`);
    ws.onopen = () => { attempt = 0; onStatus("live"); };
    ws.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      if (ev.type === "batch") ev.events.forEach(onEvent); else onEvent(ev);
    };
    ws.onclose = (e) => {
      onStatus("down");
      // a refused upgrade says nothing: ask the API, which answers 401 clearly
      if (e.code === 1006 && attempt > 1) api("/api/media/sync").catch(() => {});
      setTimeout(open, Math.min(500 * 2 ** attempt++, 10000));
    };
  };
  open();
}
