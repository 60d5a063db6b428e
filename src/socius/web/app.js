// The socius browser client: wiring, routing (the URL fragment: #/chats, #/people ...),
// the navigation's badges and the connection status. Views live in views/.
import { Api } from "./api.js";
import { alertUser, h } from "./dom.js";
import { Gateway } from "./socket.js";
import { Store } from "./store.js";
import { adminView } from "./views/admin.js";
import { authView } from "./views/auth.js";
import { announceIncoming, chatsView } from "./views/chats.js";
import { notificationsView } from "./views/notifications.js";
import { peopleView } from "./views/people.js";
import { profileView, userView } from "./views/profile.js";

const api = new Api();
const store = new Store(api);
const gateway = new Gateway(api);
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const signout = document.getElementById("signout");
const connection = document.getElementById("connection");
let current = null;
let notice = "";

const ctx = {
  api, store, gateway,
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  async signedIn() {
    await boot();
    ctx.go("#/chats");
  },
};

const routes = [
  [/^#\/chats\/(\d+)$/, (m) => chatsView(ctx, m[1])],
  [/^#\/chats$/, () => chatsView(ctx, null)],
  [/^#\/people$/, () => peopleView(ctx)],
  [/^#\/profile$/, () => profileView(ctx)],
  [/^#\/users\/(\d+)$/, (m) => userView(ctx, m[1])],
  [/^#\/notifications$/, () => notificationsView(ctx)],
  [/^#\/admin$/, () => adminView(ctx)],
];

/** Administrators see the admin page: /v1/me says who is one. */
function isAdmin(me) {
  return Boolean(me?.is_admin);
}

function route() {
  const hash = location.hash || "#/chats";
  let view = null;
  if (!api.signedIn || !store.me) {
    view = authView(ctx, { mode: hash === "#/register" ? "register" : "login", notice });
  } else {
    for (const [pattern, make] of routes) {
      const match = hash.match(pattern);
      if (match) {
        view = make(match);
        break;
      }
    }
    if (!view) {
      ctx.go("#/chats");
      return;
    }
  }
  current?.dispose?.();
  current = view;
  main.replaceChildren(view.node);
  const section = hash.split("/")[1] || "chats";
  for (const link of nav.querySelectorAll("a[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // Move the focus to the new screen, as a page load would (the composer in a chat).
  if (view.focus) view.focus();
  else (main.querySelector("h1") || main).focus();
}

function setBadge(id, count, label) {
  const badge = document.getElementById(id);
  badge.hidden = !count;
  badge.replaceChildren(String(count), h("span", { class: "visually-hidden" }, ` ${label}`));
}

function renderBadges() {
  const unread = store.totalUnread();
  setBadge("badge-chats", unread, "unread");
  setBadge("badge-people", store.incoming.length, "friend requests");
  setBadge("badge-notifications", store.notificationsUnread, "new");
  document.title = unread ? `(${unread}) socius` : "socius";
  document.getElementById("nav-admin").hidden = !isAdmin(store.me);
}

store.addEventListener("change", (e) => {
  if (["conversations", "graph", "notifications", "me"].includes(e.detail)) renderBadges();
});
store.addEventListener("incoming", (e) => announceIncoming(store, e.detail));
gateway.addEventListener("event", (e) => store.apply(e.detail));
gateway.addEventListener("reset", () => {
  // The cursor was refused or expired: read the state again (docs/realtime.md).
  store.load().catch((error) => alertUser(error.message));
});
gateway.addEventListener("status", (e) => {
  const words = { live: "Connected", connecting: "Connecting…", offline: "Offline: reconnecting…" };
  connection.textContent = words[e.detail];
  connection.dataset.status = e.detail;
});
api.addEventListener("signedout", (e) => {
  gateway.stop();
  store.reset();
  nav.hidden = true;
  signout.hidden = true;
  connection.hidden = true;
  notice = e.detail === "logout" ? "You are signed out." : "Your session has ended; please sign in again.";
  ctx.go("#/login");
});
signout.addEventListener("click", async () => {
  try {
    await api.logout();
  } catch {
    // signed out locally all the same
  }
});

async function boot() {
  notice = "";
  // Connect first and hold the events while the state is read, so nothing falls between.
  gateway.start(null);
  try {
    await store.load();
  } catch (error) {
    alertUser(error.message);
    if (!api.signedIn) return;
    throw error;
  }
  nav.hidden = false;
  signout.hidden = false;
  connection.hidden = false;
  renderBadges();
}

/** Back from a provider: the callback put a one-time code in the fragment. */
async function finishProviderSignIn() {
  const code = new URLSearchParams(location.hash.slice(1)).get("oidc_code");
  if (!code) return false;
  history.replaceState(null, "", location.pathname + location.search + "#/login");
  try {
    await api.oidcExchange(code);
    await ctx.signedIn();
  } catch (error) {
    notice = error.message;
    route();
  }
  return true;
}

window.addEventListener("hashchange", route);
finishProviderSignIn().then((handled) => {
  if (handled) return;
  if (api.signedIn) {
    boot().then(route, () => route());
  } else {
    route();
  }
});
