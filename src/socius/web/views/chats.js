// Conversations: the list (with unread badges and presence) and the open conversation
// (live messages, typing, read receipts, reactions, edits and deletes, a composer).
import { alertUser, announce, h, randomId, replaceChildren, shortTime } from "../dom.js";
import { attachmentList, nameOf } from "./attachments.js";
import { act, avatar, isOnline, listen, presenceText } from "./common.js";

const EMOJI = ["👍", "❤️", "😂", "😮", "😢", "🎉"];
const TYPING_EVERY_MS = 2500;

export function chatsView(ctx, openId) {
  const { store } = ctx;
  store.open = openId;
  const list = h("ul", { class: "conv-list", "aria-label": "Conversations" });
  const groupSlot = h("div");
  const newGroup = h(
    "button",
    {
      type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": "group-form",
      onclick: () => toggleGroupForm(ctx, groupSlot, newGroup),
    },
    "New group",
  );
  const side = h(
    "section",
    { class: "conv-side", "aria-labelledby": "chats-title" },
    h("div", { class: "pane-head" }, h("h1", { id: "chats-title", tabindex: "-1" }, "Chats"), newGroup),
    groupSlot,
    list,
  );
  const pane = openId ? conversationPane(ctx, openId) : emptyPane(ctx);
  const renderList = () => replaceChildren(list, ...conversationItems(ctx, openId));
  renderList();
  const stop = listen(store, (what) => {
    if (what === "conversations" || what === "users" || what === "presence") renderList();
  });
  return {
    node: h("div", { class: openId ? "chats has-open" : "chats" }, side, pane.node),
    focus: pane.focus,
    dispose() {
      stop();
      pane.dispose?.();
      if (store.open === openId) store.open = null;
    },
  };
}

function conversationItems(ctx, openId) {
  const { store } = ctx;
  const items = store.sortedConversations();
  if (!items.length) {
    return [h("li", { class: "empty" }, "No conversations yet. Find people under People, or start a group.")];
  }
  return items.map((c) => {
    const title = store.titleOf(c);
    const peer = store.peerOf(c);
    const last = c.last_message;
    let preview = "";
    if (last) {
      const who = last.sender_id === store.me.id ? "You: " : c.kind === "group" ? `${store.nameOf(last.sender_id)}: ` : "";
      preview = last.deleted ? "Message deleted" : `${who}${textOf(last)}`;
    }
    const unread = c.unread_count || 0;
    return h(
      "li",
      {},
      h(
        "a",
        {
          href: `#/chats/${c.id}`,
          class: "conv-item",
          "aria-current": c.id === openId ? "page" : null,
          dataset: { key: `conv-${c.id}` },
        },
        avatar(title, peer ? isOnline(store, peer) : null),
        h(
          "span",
          { class: "conv-text" },
          h("span", { class: "conv-title" }, title),
          h("span", { class: "conv-preview" }, preview),
        ),
        h(
          "span",
          { class: "conv-meta" },
          last ? h("time", { datetime: last.created_at }, shortTime(last.created_at)) : null,
          unread
            ? h("span", { class: "badge" }, String(unread), h("span", { class: "visually-hidden" }, " unread"))
            : null,
        ),
      ),
    );
  });
}

function emptyPane() {
  return {
    node: h(
      "section",
      { class: "conv-pane empty-pane", "aria-label": "No conversation open" },
      h("p", {}, "Pick a conversation, or find someone to talk to under People."),
    ),
  };
}

function toggleGroupForm(ctx, slot, button) {
  if (slot.firstChild) {
    slot.replaceChildren();
    button.setAttribute("aria-expanded", "false");
    button.focus();
    return;
  }
  button.setAttribute("aria-expanded", "true");
  const { api, store } = ctx;
  const title = h("input", { id: "group-title", required: true, maxlength: 100 });
  const friends = store.friends;
  const boxes = friends.map((f) =>
    h(
      "label",
      { class: "check" },
      h("input", { type: "checkbox", value: f.id }),
      ` ${f.display_name || f.username}`,
    ),
  );
  const form = h(
    "form",
    {
      id: "group-form",
      class: "card group-form",
      "aria-label": "New group",
      onsubmit: async (e) => {
        e.preventDefault();
        const ids = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
        const created = await act(e.submitter, () => api.createGroup(title.value.trim(), ids));
        if (!created) return;
        store.conversations.set(created.id, created);
        store.changed("conversations");
        ctx.go(`#/chats/${created.id}`);
      },
    },
    h("label", { for: "group-title" }, "Group name"),
    title,
    h(
      "fieldset",
      {},
      h("legend", {}, "Members"),
      boxes.length ? boxes : h("p", { class: "muted" }, "Add friends first: only friends can be added here."),
    ),
    h("button", { type: "submit", class: "primary" }, "Create group"),
  );
  slot.replaceChildren(form);
  title.focus();
}

function conversationPane(ctx, id) {
  const { api, store, gateway } = ctx;
  // picker/editing: the message whose reaction picker is open / being edited; focusKey:
  // the data-key to focus after the next render (the React button once the picker closes).
  const state = { picker: null, editing: null, first: true, lastTyping: 0, focusKey: null, files: [] };
  const nodes = new Map(); // message id -> {li, sig}

  const title = h("h2", { id: "conv-title", tabindex: "-1" });
  const subtitle = h("p", { class: "conv-sub" });
  const older = h(
    "button",
    {
      type: "button", class: "link older",
      onclick: async (e) => {
        const before = messages.scrollHeight;
        await act(e.currentTarget, () => store.loadMessages(id, { older: true }));
        messages.scrollTop += messages.scrollHeight - before;
      },
    },
    "Show older messages",
  );
  const messages = h("ol", { class: "messages", "aria-labelledby": "conv-title", tabindex: "0" });
  const receipt = h("p", { class: "receipt" });
  const typingLine = h("p", { class: "typing", role: "status" });
  const editBanner = h("p", { class: "edit-banner", hidden: true });
  const composer = h("textarea", {
    id: "composer", rows: 1, maxlength: 4000, placeholder: "Write a message",
    "aria-describedby": "composer-hint",
    oninput: () => {
      const now = Date.now();
      if (composer.value && now - state.lastTyping > TYPING_EVERY_MS && !state.editing) {
        state.lastTyping = now;
        gateway.typing(id);
      }
    },
    onkeydown: (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      } else if (e.key === "Escape" && state.editing) {
        stopEditing();
      }
    },
  });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  // Files to send with the next message: uploaded when it is sent, then attached to it.
  const chosen = h("ul", { class: "chosen", "aria-label": "Files to send", hidden: true });
  const filePicker = h("input", {
    type: "file", multiple: true, class: "visually-hidden", tabindex: "-1", "aria-label": "Attach files",
    onchange: () => {
      state.files = [...state.files, ...filePicker.files].slice(0, 10);
      filePicker.value = "";
      renderChosen();
      composer.focus();
    },
  });
  const attach = h(
    "button",
    { type: "button", class: "secondary", "aria-label": "Attach a file", onclick: () => filePicker.click() },
    "📎",
  );

  function renderChosen() {
    chosen.hidden = !state.files.length;
    chosen.replaceChildren(
      ...state.files.map((file, i) =>
        h(
          "li",
          {},
          `${file.name} `,
          h(
            "button",
            {
              type: "button", class: "link", "aria-label": `Remove ${file.name}`,
              onclick: () => {
                state.files.splice(i, 1);
                renderChosen();
                composer.focus();
              },
            },
            "Remove",
          ),
        ),
      ),
    );
  }
  const form = h(
    "form",
    { class: "composer", onsubmit: (e) => { e.preventDefault(); submit(); } },
    h("label", { for: "composer", class: "visually-hidden" }, "Message"),
    filePicker,
    attach,
    composer,
    send,
    h("p", { id: "composer-hint", class: "visually-hidden" }, "Enter sends; Shift+Enter starts a new line."),
  );

  async function submit() {
    const body = composer.value.trim();
    const files = state.editing ? [] : [...state.files];
    if (!body && !files.length) return;
    send.disabled = true;
    try {
      let result;
      if (state.editing) result = await api.edit(id, state.editing, body);
      else {
        const ids = [];
        for (const file of files) ids.push((await api.upload(file)).id);
        result = await api.send(id, body, randomId(), ids);
        state.files = [];
        renderChosen();
      }
      store.keepMessage(result);
      composer.value = "";
      state.lastTyping = 0;
      if (state.editing) stopEditing();
      scrollToEnd();
    } catch (error) {
      alertUser(error.message);
    } finally {
      send.disabled = false;
      composer.focus();
    }
  }

  function startEditing(m) {
    state.editing = m.id;
    composer.value = m.body;
    editBanner.hidden = false;
    editBanner.replaceChildren(
      "Editing your message. ",
      h("button", { type: "button", class: "link", onclick: stopEditing }, "Cancel"),
    );
    send.textContent = "Save";
    composer.focus();
  }

  function stopEditing() {
    state.editing = null;
    composer.value = "";
    editBanner.hidden = true;
    send.textContent = "Send";
    composer.focus();
  }

  function scrollToEnd() {
    messages.scrollTop = messages.scrollHeight;
  }

  function renderHeader() {
    const c = store.conversations.get(id);
    title.textContent = c ? store.titleOf(c) : "Conversation";
    if (!c) {
      subtitle.textContent = "";
      return;
    }
    const peer = store.peerOf(c);
    subtitle.textContent = peer
      ? presenceText(store, peer)
      : `${c.member_count} member${c.member_count === 1 ? "" : "s"}`;
  }

  function renderMessages() {
    const atEnd = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 48;
    const focusKey = state.focusKey || document.activeElement?.dataset?.key;
    state.focusKey = null;
    const list = store.sortedMessages(id);
    const seen = new Set();
    let previous = null;
    for (const m of list) {
      seen.add(m.id);
      const sig = signature(store, m, state);
      let entry = nodes.get(m.id);
      if (!entry || entry.sig !== sig) {
        const li = messageItem(ctx, id, m, state, { startEditing, rerender: renderMessages });
        if (entry) entry.li.replaceWith(li);
        entry = { li, sig };
        nodes.set(m.id, entry);
      }
      const want = previous ? previous.nextSibling : messages.firstChild;
      if (want !== entry.li) messages.insertBefore(entry.li, want);
      previous = entry.li;
    }
    for (const [mid, entry] of nodes) {
      if (!seen.has(mid)) {
        entry.li.remove();
        nodes.delete(mid);
      }
    }
    if (focusKey && document.activeElement?.dataset?.key !== focusKey) {
      messages.querySelector(`[data-key="${CSS.escape(focusKey)}"]`)?.focus();
    }
    older.hidden = Boolean(store.complete.get(id)) || !list.length;
    if (!list.length && store.messages.has(id)) {
      messages.replaceChildren(h("li", { class: "empty" }, "No messages yet. Say hello!"));
      nodes.clear();
    } else {
      messages.querySelector(":scope > li.empty")?.remove();
    }
    if (state.first || atEnd) scrollToEnd();
    state.first = false;
    renderReceipt();
    readIfVisible();
  }

  function renderReceipt() {
    const mine = store.sortedMessages(id).filter((m) => m.sender_id === store.me.id && !m.deleted);
    const last = mine[mine.length - 1];
    const readers = store.members.get(id);
    if (!last || !readers) {
      receipt.textContent = "";
      return;
    }
    const who = [...readers].filter(([uid, seq]) => uid !== store.me.id && seq >= last.seq).map(([uid]) => uid);
    const c = store.conversations.get(id);
    if (!who.length) receipt.textContent = "";
    else if (c?.kind === "direct") receipt.textContent = "Seen";
    else {
      const names = who.slice(0, 3).map((uid) => store.nameOf(uid));
      const more = who.length > 3 ? ` and ${who.length - 3} more` : "";
      receipt.textContent = `Seen by ${names.join(", ")}${more}`;
    }
  }

  function renderTyping() {
    const names = store.typingIn(id).map((uid) => store.nameOf(uid));
    typingLine.textContent = !names.length
      ? ""
      : names.length === 1
        ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`;
  }

  function readIfVisible() {
    if (document.visibilityState === "visible" && store.open === id) store.markRead(id);
  }

  const onVisible = () => readIfVisible();
  document.addEventListener("visibilitychange", onVisible);
  const stop = listen(store, (what) => {
    if (what === `messages:${id}` || what === "users") renderMessages();
    if (what === `members:${id}`) renderReceipt();
    if (what === `typing:${id}` || what === "users") renderTyping();
    if (what === "conversations" || what === "users" || what === "presence") renderHeader();
  });

  renderHeader();
  if (!store.conversations.has(id)) {
    store.fetchConversation(id).then((c) => {
      if (!c) alertUser("This conversation is not available.");
    });
  }
  store.loadMessages(id).catch((error) => alertUser(error.message));
  store.loadMembers(id);
  renderMessages();

  const node = h(
    "section",
    { class: "conv-pane", "aria-labelledby": "conv-title" },
    h(
      "div",
      { class: "pane-head" },
      h("a", { href: "#/chats", class: "back", "aria-label": "Back to conversations" }, "‹ Chats"),
      h("div", { class: "conv-heading" }, title, subtitle),
    ),
    older,
    messages,
    receipt,
    typingLine,
    editBanner,
    chosen,
    form,
  );
  return {
    node,
    focus: () => composer.focus(),
    dispose() {
      stop();
      document.removeEventListener("visibilitychange", onVisible);
    },
  };
}

function signature(store, m, state) {
  const mine = EMOJI.filter((e) => store.myReactions.has(`${m.id} ${e}`)).join("");
  return JSON.stringify([
    m.body, m.deleted, m.edited_at, m.reactions, mine, store.nameOf(m.sender_id),
    (m.attachments || []).map((a) => a.id),
    state.picker === m.id, state.editing === m.id,
  ]);
}

function messageItem(ctx, conversationId, m, state, { startEditing, rerender }) {
  const { api, store } = ctx;
  const mine = m.sender_id === store.me.id;
  const sender = mine ? "You" : store.nameOf(m.sender_id);
  const react = async (button, emoji) => {
    const on = !store.myReactions.has(`${m.id} ${emoji}`);
    const result = await act(button, () => api.react(conversationId, m.id, emoji, on));
    if (!result) return;
    if (on) store.myReactions.add(`${m.id} ${emoji}`);
    else store.myReactions.delete(`${m.id} ${emoji}`);
    state.picker = null;
    state.focusKey = `react-${m.id}`;
    store.keepMessage(result);
  };
  const reactions = Object.entries(m.reactions || {}).filter(([, n]) => n > 0);
  const body = m.deleted
    ? h("p", { class: "body deleted" }, "This message was deleted.")
    : [m.body ? h("p", { class: "body" }, m.body) : null, attachmentList(api, m.attachments)];
  const actions = m.deleted
    ? null
    : h(
        "div",
        { class: "message-actions" },
        h(
          "button",
          {
            type: "button", class: "link", "aria-expanded": String(state.picker === m.id),
            "aria-label": `React to ${sender}'s message`, dataset: { key: `react-${m.id}` },
            onclick: () => {
              state.picker = state.picker === m.id ? null : m.id;
              rerender();
            },
          },
          "React",
        ),
        mine
          ? h(
              "button",
              {
                type: "button", class: "link", "aria-label": "Edit your message",
                dataset: { key: `edit-${m.id}` }, onclick: () => startEditing(m),
              },
              "Edit",
            )
          : null,
        mine
          ? h(
              "button",
              {
                type: "button", class: "link danger", "aria-label": "Delete your message",
                dataset: { key: `delete-${m.id}` },
                onclick: async (e) => {
                  if (!window.confirm("Delete this message for everyone?")) return;
                  const result = await act(e.currentTarget, () => api.deleteMessage(conversationId, m.id));
                  if (result) store.keepMessage(result);
                },
              },
              "Delete",
            )
          : null,
      );
  const picker =
    state.picker === m.id
      ? h(
          "div",
          {
            class: "picker", role: "group", "aria-label": "Choose a reaction",
            onkeydown: (e) => {
              if (e.key === "Escape") {
                state.picker = null;
                state.focusKey = `react-${m.id}`;
                rerender();
              }
            },
          },
          EMOJI.map((emoji) =>
            h(
              "button",
              {
                type: "button", "aria-label": `React with ${emoji}`,
                "aria-pressed": String(store.myReactions.has(`${m.id} ${emoji}`)),
                dataset: { key: `pick-${m.id}-${emoji}` },
                onclick: (e) => react(e.currentTarget, emoji),
              },
              emoji,
            ),
          ),
        )
      : null;
  return h(
    "li",
    { class: mine ? "message mine" : "message", dataset: { id: m.id, seq: m.seq } },
    h(
      "div",
      { class: "meta" },
      h("span", { class: "sender" }, sender),
      " ",
      h("time", { datetime: m.created_at }, shortTime(m.created_at)),
      m.edited_at && !m.deleted ? h("span", { class: "edited" }, " (edited)") : null,
    ),
    body,
    reactions.length
      ? h(
          "div",
          { class: "reactions", role: "group", "aria-label": "Reactions" },
          reactions.map(([emoji, count]) =>
            h(
              "button",
              {
                type: "button", class: "reaction",
                "aria-pressed": String(store.myReactions.has(`${m.id} ${emoji}`)),
                "aria-label": `${emoji} ${count}`,
                dataset: { key: `reaction-${m.id}-${emoji}` },
                disabled: m.deleted,
                onclick: (e) => react(e.currentTarget, emoji),
              },
              `${emoji} ${count}`,
            ),
          ),
        )
      : null,
    actions,
    picker,
  );
}

/** Say new messages from others aloud (screen readers), wherever the user is. */
export function announceIncoming(store, m) {
  const c = store.conversations.get(m.conversation_id);
  const where = c?.kind === "group" ? ` in ${store.titleOf(c)}` : "";
  announce(`New message from ${store.nameOf(m.sender_id)}${where}: ${textOf(m)}`);
}

/** A message's text, or what it carries when it has none. */
function textOf(m) {
  if (m.body) return m.body;
  const files = m.attachments || [];
  if (!files.length) return "";
  return files.length === 1 ? `📎 ${nameOf(files[0])}` : `📎 ${files.length} files`;
}
