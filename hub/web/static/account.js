// The account page: your password, where you are signed in, API tokens, and (owners) the household.
async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options,
    headers: { "Content-Type": "application/json", ...(options.headers || {}) } });
  if (r.status === 401) { location.replace(`/login?next=${encodeURIComponent(location.pathname)}`); throw new Error("signed out"); }
  const body = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw Object.assign(new Error(body.error || r.statusText), { status: r.status });
  return body;
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 90) return "just now";
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} days ago`;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function button(text, label, onclick) {
  const b = el("button", { type: "button", textContent: text, onclick });
  b.setAttribute("aria-label", label);
  return b;
}

function say(id, text, ok = true) {
  const p = document.getElementById(id);
  p.textContent = text;
  p.className = ok ? "ok" : "error";
}

const { user } = await api("/api/auth/state");
if (!user) location.replace("/login?next=/account");
document.getElementById("me").textContent = `Signed in as ${user.name} (${user.role}).`;

async function showSessions() {
  const rows = (await api("/api/auth/sessions")).map((s) => el("tr", {},
    el("td", {}, s.device + (s.current ? " — this browser" : "")), el("td", {}, s.address), el("td", {}, ago(s.last_seen)),
    el("td", {}, button(s.current ? "Sign out" : "Sign it out", `Sign out ${s.device}, last active ${ago(s.last_seen)}`, async () => {
      await api(`/api/auth/sessions/${s.id}`, { method: "DELETE" });
      if (s.current) location.replace("/login"); else showSessions();
    }))));
  document.querySelector("#sessions tbody").replaceChildren(...rows);
}

async function showTokens() {
  const rows = (await api("/api/tokens")).map((t) => el("tr", {},
    el("td", {}, t.name), el("td", {}, t.user), el("td", {}, t.scope === "read" ? "read only" : "read and control"),
    el("td", {}, ago(t.created)), el("td", {}, ago(t.last_used)),
    el("td", {}, button("Revoke", `Revoke token ${t.name}`, async () => {
      await api(`/api/tokens/${t.id}`, { method: "DELETE" });
      showTokens();
    }))));
  document.querySelector("#tokens tbody").replaceChildren(...rows);
}

async function showUsers() {
  const rows = (await api("/api/users")).map((u) => {
    const role = el("select", { onchange: async () => {
      try { await api(`/api/users/${encodeURIComponent(u.name)}`, { method: "PATCH", body: JSON.stringify({ role: role.value }) }); say("user-result", `${u.name} is now ${role.value}.`); }
      catch (e) { say("user-result", e.message, false); role.value = u.role; }
    } }, el("option", { value: "member", textContent: "member" }), el("option", { value: "owner", textContent: "owner" }));
    role.value = u.role;
    role.setAttribute("aria-label", `Role of ${u.name}`);
    return el("tr", {}, el("td", {}, u.name), el("td", {}, role),
      el("td", {}, u.id === user.id ? "" : button("Remove", `Remove ${u.name}`, async () => {
        if (!confirm(`Remove ${u.name}? Their sessions and tokens end.`)) return;
        try { await api(`/api/users/${encodeURIComponent(u.name)}`, { method: "DELETE" }); showUsers(); }
        catch (e) { say("user-result", e.message, false); }
      })));
  });
  document.querySelector("#users tbody").replaceChildren(...rows);
}

document.getElementById("password-form").onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    await api("/api/auth/password", { method: "POST", body: JSON.stringify({
      current: document.getElementById("current").value, new: document.getElementById("new").value }) });
    ev.target.reset();
    say("password-result", "Password changed. Other devices are signed out.");
    showSessions();
  } catch (e) { say("password-result", e.message, false); }
};

document.getElementById("token-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const t = await api("/api/tokens", { method: "POST", body: JSON.stringify({
    name: document.getElementById("token-name").value.trim(), scope: document.getElementById("token-scope").value }) });
  ev.target.reset();
  document.getElementById("new-token").replaceChildren(
    el("p", { className: "hint", textContent: `Token "${t.name}" — copy it now, it is shown only once:` }),
    el("code", { className: "secret", textContent: t.token }));
  showTokens();
};

document.getElementById("user-form").onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    const u = await api("/api/users", { method: "POST", body: JSON.stringify({
      name: document.getElementById("user-name").value.trim(), password: document.getElementById("user-password").value,
      role: document.getElementById("user-role").value }) });
    ev.target.reset();
    say("user-result", `Added ${u.name} (${u.role}).`);
    showUsers();
  } catch (e) { say("user-result", e.message, false); }
};

document.getElementById("logout").onclick = async () => {
  await fetch("/api/auth/logout", { method: "POST", credentials: "same-origin" });
  location.replace("/login");
};

await Promise.all([showSessions(), showTokens()]);
if (user.role === "owner") { document.getElementById("users-card").hidden = false; await showUsers(); }
