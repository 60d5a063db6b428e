// Your profile (view and edit) and other people's profiles.
import { h, replaceChildren, shortTime } from "../dom.js";
import { act, avatar, isOnline, listen, presenceText, relationActions } from "./common.js";

function card(store, user) {
  return h(
    "div",
    { class: "card profile-card" },
    avatar(user.display_name || user.username, isOnline(store, user.id)),
    h(
      "div",
      {},
      h("p", { class: "profile-name" }, user.display_name || user.username),
      h("p", { class: "muted" }, `@${user.username}${user.is_private ? " · private account" : ""}`),
      presenceText(store, user.id) ? h("p", { class: "presence" }, presenceText(store, user.id)) : null,
      user.bio ? h("p", { class: "bio" }, user.bio) : null,
      h(
        "p",
        { class: "counts" },
        `${user.friends_count} friends · ${user.followers_count} followers · ${user.following_count} following`,
      ),
      h("p", { class: "muted" }, `Joined ${shortTime(user.created_at)}`),
    ),
  );
}

export function profileView(ctx) {
  const { api, store } = ctx;
  const me = store.me;
  const status = h("p", { role: "status", class: "muted" });
  const display = h("input", { id: "me-display-name", maxlength: 64, value: me.display_name || "" });
  const bio = h("textarea", { id: "me-bio", rows: 3, maxlength: 500 });
  bio.value = me.bio || "";
  const isPrivate = h("input", { id: "me-private", type: "checkbox", checked: Boolean(me.is_private) });
  const dmPolicy = h(
    "select",
    { id: "me-dm-policy" },
    h("option", { value: "everyone", selected: me.dm_policy === "everyone" }, "Everyone"),
    h("option", { value: "friends", selected: me.dm_policy === "friends" }, "Friends only"),
  );
  const cardSlot = h("div", {}, card(store, me));
  const stop = listen(store, (what) => {
    if (what === "me" || what === "presence") replaceChildren(cardSlot, card(store, store.me));
  });
  const form = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "edit-title",
      onsubmit: async (e) => {
        e.preventDefault();
        status.textContent = "";
        const updated = await act(e.submitter, () =>
          api.updateMe({
            display_name: display.value.trim(),
            bio: bio.value,
            is_private: isPrivate.checked,
            dm_policy: dmPolicy.value,
          }),
        );
        if (!updated) return;
        store.me = updated;
        store.users.set(updated.id, updated);
        store.changed("me");
        store.changed("users");
        status.textContent = "Saved.";
      },
    },
    h("h2", { id: "edit-title" }, "Edit your profile"),
    h("label", { for: "me-display-name" }, "Display name"),
    display,
    h("label", { for: "me-bio" }, "Bio"),
    bio,
    h("label", { class: "check" }, isPrivate, " Private account (followers need your approval)"),
    h("label", { for: "me-dm-policy" }, "Who may start a conversation with you"),
    dmPolicy,
    h("button", { type: "submit", class: "primary" }, "Save"),
    status,
  );
  return {
    node: h(
      "div",
      { class: "page" },
      h("h1", { tabindex: "-1" }, "Your profile"),
      cardSlot,
      form,
      h("p", {}, h("a", { href: "/docs" }, "API reference")),
    ),
    dispose: stop,
  };
}

export function userView(ctx, userId) {
  const { api, store } = ctx;
  if (userId === store.me.id) return profileView(ctx);
  const slot = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const heading = h("h1", { tabindex: "-1" }, "Profile");
  let user = null;
  let rel = null;
  async function load() {
    user = await act(null, () => api.user(userId));
    if (!user) {
      replaceChildren(slot, h("p", {}, "This person cannot be found."));
      return;
    }
    store.users.set(user.id, user);
    const rels = await act(null, () => api.relationships([userId]));
    rel = rels?.items?.[0] || null;
    render();
  }
  function render() {
    if (!user) return;
    heading.textContent = user.display_name || user.username;
    replaceChildren(
      slot,
      card(store, user),
      h("div", { class: "actions" }, relationActions(ctx, userId, rel, (r) => {
        if (r && r.user_id) rel = r;
        render();
      })),
    );
  }
  load();
  const stop = listen(store, (what) => {
    if (what === "presence" || what === "graph") render();
  });
  return { node: h("div", { class: "page" }, heading, slot), dispose: stop };
}
