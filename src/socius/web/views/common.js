// Pieces several screens share: avatars, presence, relationship buttons, store listeners.
import { alertUser, h, initials, shortTime } from "../dom.js";

/** Call `fn(what)` on every store change; returns the function that stops it. */
export function listen(store, fn) {
  const handler = (e) => fn(e.detail);
  store.addEventListener("change", handler);
  return () => store.removeEventListener("change", handler);
}

export function avatar(name, online = null) {
  return h(
    "span",
    { class: "avatar", "aria-hidden": "true" },
    initials(name),
    online === null ? null : h("span", { class: online ? "dot online" : "dot" }),
  );
}

/** "Online", "Last seen 10:32", or "" when unknown (only friends' presence is told). */
export function presenceText(store, userId) {
  const p = store.presence.get(userId);
  if (!p) return "";
  if (p.online) return "Online";
  return p.last_seen_at ? `Last seen ${shortTime(p.last_seen_at)}` : "Offline";
}

export function isOnline(store, userId) {
  return store.presence.get(userId)?.online ?? null;
}

/** Run an API action from a button: disabled meanwhile, errors shown. */
export async function act(button, action) {
  if (button) button.disabled = true;
  try {
    return await action();
  } catch (error) {
    alertUser(error.message || String(error));
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Open (or create) the direct conversation with `userId` and show it. */
export async function message(ctx, userId, button) {
  const c = await act(button, () => ctx.api.openDirect(userId));
  if (!c) return;
  ctx.store.conversations.set(c.id, c);
  ctx.store.changed("conversations");
  ctx.go(`#/chats/${c.id}`);
}

/** The buttons that fit what `rel` says `userId` is to us; `done` after each change. */
export function relationActions(ctx, userId, rel, done) {
  const { api, store } = ctx;
  const name = store.nameOf(userId);
  const run = (label, action, extra = {}) =>
    h(
      "button",
      {
        type: "button",
        class: extra.class || "secondary",
        "aria-label": `${label}: ${name}`,
        dataset: { key: `${label}-${userId}` },
        onclick: async (e) => {
          const result = await act(e.currentTarget, action);
          if (result !== null) {
            store.loadGraph().catch(() => {});
            done?.(result);
          }
        },
      },
      label,
    );
  if (!rel) return [];
  if (rel.blocking || rel.blocked_by) return [h("span", { class: "muted" }, "Blocked")];
  if (rel.friend) {
    return [
      h(
        "button",
        {
          type: "button",
          "aria-label": `Message ${name}`,
          dataset: { key: `message-${userId}` },
          onclick: (e) => message(ctx, userId, e.currentTarget),
        },
        "Message",
      ),
      run("Unfriend", () => api.unfriend(userId)),
    ];
  }
  if (rel.request_received) {
    return [
      run("Accept", () => api.acceptFriend(userId), { class: "primary" }),
      run("Decline", () => api.declineFriend(userId)),
    ];
  }
  if (rel.request_sent) return [run("Cancel request", () => api.cancelFriendRequest(userId))];
  return [run("Add friend", () => api.sendFriendRequest(userId), { class: "primary" })];
}

/** A person in a list: avatar, name (a link to their profile), @username, presence. */
export function personLine(store, user, ...actions) {
  const online = isOnline(store, user.id);
  const status = presenceText(store, user.id);
  return h(
    "li",
    { class: "person" },
    avatar(user.display_name || user.username, online),
    h(
      "div",
      { class: "person-text" },
      h("a", { href: `#/users/${user.id}` }, user.display_name || user.username),
      h("span", { class: "muted" }, ` @${user.username}`),
      status ? h("span", { class: "presence" }, status) : null,
    ),
    h("div", { class: "actions" }, actions),
  );
}
