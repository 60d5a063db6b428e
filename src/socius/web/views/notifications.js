// The notification inbox; opening it marks everything read.
import { h, replaceChildren, shortTime } from "../dom.js";
import { act, listen } from "./common.js";

function describe(store, n) {
  const p = n.payload || {};
  const who = store.nameOf(p.user_id ?? p.by ?? p.sender_id);
  switch (n.type) {
    case "friend.request": return `${who} sent you a friend request`;
    case "friend.accepted": return `${who} accepted your friend request`;
    case "follow.new": return `${who} follows you now`;
    case "follow.request": return `${who} asked to follow you`;
    case "follow.accepted": return `${who} accepted your follow request`;
    case "member.added": return `${who} added you to ${p.conversation?.title || "a conversation"}`;
    case "message": return `${who} sent you a message`;
    case "mention": return `${who} mentioned you`;
    case "reply": return `${who} replied to you`;
    case "reaction": return `${who} reacted to your message`;
    default: return n.type.replace(/[._]/g, " ");
  }
}

function target(n) {
  const p = n.payload || {};
  if (n.type === "member.added" && p.conversation?.id) return `#/chats/${p.conversation.id}`;
  if (p.conversation_id) return `#/chats/${p.conversation_id}`;
  if (n.type.startsWith("friend.")) return "#/people";
  return p.user_id ? `#/users/${p.user_id}` : null;
}

export function notificationsView(ctx) {
  const { api, store } = ctx;
  const list = h("ol", { class: "notifications", "aria-labelledby": "notifications-title" });

  function render() {
    replaceChildren(
      list,
      ...(store.notifications.length
        ? store.notifications.map((n) => {
            const href = target(n);
            const text = describe(store, n);
            return h(
              "li",
              { class: n.read ? "notification" : "notification unread" },
              href ? h("a", { href }, text) : h("span", {}, text),
              n.read ? null : h("span", { class: "visually-hidden" }, " (new)"),
              " ",
              h("time", { datetime: n.created_at, class: "muted" }, shortTime(n.created_at)),
            );
          })
        : [h("li", { class: "empty" }, "Nothing yet.")]),
    );
  }

  async function markAll() {
    const newest = store.notifications[0];
    if (!newest || !store.notificationsUnread) return;
    const done = await act(null, () => api.markNotificationsRead(newest.id));
    if (done === null) return;
    store.notificationsUnread = 0;
    for (const n of store.notifications) n.read = true;
    store.changed("notifications");
  }

  render();
  markAll();
  const stop = listen(store, (what) => {
    if (what === "notifications" || what === "users") render();
  });
  return {
    node: h("div", { class: "page" }, h("h1", { id: "notifications-title", tabindex: "-1" }, "Notifications"), list),
    dispose: stop,
  };
}
