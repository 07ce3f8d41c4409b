// Sign in, or on a new hub create its owner; then on to the page the household came for.
const form = document.getElementById("login-form");
const error = document.getElementById("error");
const next = new URLSearchParams(location.search).get("next");
const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";

async function post(path, body) {
  const r = await fetch(path, { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return { r, body: await r.json().catch(() => ({})) };
}

const state = await fetch("/api/auth/state", { credentials: "same-origin" }).then((r) => r.json());
const setup = !state.owner_exists;
if (state.user && !setup) location.replace(target);
if (setup) {
  document.title = "hub · set up";
  document.getElementById("form-title").textContent = "Set up this hub";
  document.getElementById("setup-hint").hidden = false;
  document.getElementById("repeat-row").hidden = false;
  document.getElementById("password").autocomplete = "new-password";
  document.getElementById("password").minLength = 8;
  document.getElementById("password2").required = true;
  document.getElementById("submit").textContent = "Create owner and sign in";
  document.getElementById("locked-out").hidden = true;
}
form.hidden = false;
document.getElementById("name").focus();

form.onsubmit = async (ev) => {
  ev.preventDefault();
  error.textContent = "";
  const name = form.name.value.trim();
  const password = form.password.value;
  if (setup && password !== form.password2.value) { error.textContent = "The two passwords differ."; return; }
  const { r, body } = await post(setup ? "/api/onboarding" : "/api/auth/login", { name, password });
  if (r.ok) { location.replace(target); return; }
  if (r.status === 429) error.textContent = `Too many wrong passwords. Try again in ${body.retry_after} s.`;
  else if (r.status === 409) location.replace("/login");
  else error.textContent = body.error || `Sign-in failed (${r.status}).`;
};
