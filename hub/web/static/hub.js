// The household page: start-up, sign-in, and which view the address shows (#/, #/device/<id>,
// #/library, #/scenes). No framework and no build step: ES modules served as they are.

import { connect, signIn, signOut, whenUnauthorized } from "./api.js";
import { mountHome } from "./cards.js";
import { mountDevice, openDevice } from "./device.js";
import { mountLibrary, openLibrary } from "./library.js";
import { mountScenes, openScenes } from "./scenes.js";
import { on, onEvent } from "./store.js";

const $ = (id) => document.getElementById(id);
const views = { home: $("view-home"), device: $("view-device"), library: $("view-library"), scenes: $("view-scenes") };

function route() {
  const [, name = "", arg = ""] = location.hash.match(/^#\/([a-z]*)\/?(.*)$/) || [];
  const view = views[name] ? name : "home";
  for (const [k, node] of Object.entries(views)) node.hidden = k !== view;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (view === "device") openDevice(decodeURIComponent(arg));
  else if (view === "library") openLibrary();
  else if (view === "scenes") openScenes();
  const title = { home: "Home", device: "Device", library: "Library", scenes: "Scenes" }[view];
  document.title = `${title} · hub`;
  return view;
}

$("sign-out").onclick = () => signOut();

whenUnauthorized(signIn);
mountHome(views.home);
mountDevice(views.device);
mountLibrary(views.library);
mountScenes(views.scenes);
on("snapshot", () => { if (views.home.hidden) route(); });  // views that need the devices
window.addEventListener("hashchange", () => { route(); $("main").focus({ preventScroll: true }); });

route();
const pill = $("conn");
const status = (s) => { pill.dataset.state = s; pill.textContent = s === "live" ? "live" : "reconnecting…"; };
connect(onEvent, status);  // the hub served this page, so the session cookie is good
