// What the client knows, kept up to date by REST reads and the gateway's events.
// Applying an event is idempotent (a replayed event changes nothing twice). Views listen
// for "change" events whose detail names what changed: "me", "users", "conversations",
// "messages:<id>", "members:<id>", "typing:<id>", "presence", "graph", "notifications".

const TYPING_MS = 5000;

export class Store extends EventTarget {
  constructor(api) {
    super();
    this.api = api;
    this.me = null;
    this.users = new Map(); // id -> public profile
    this.conversations = new Map(); // id -> conversation (as GET /v1/conversations)
    this.messages = new Map(); // conversation id -> Map(message id -> message)
    this.complete = new Map(); // conversation id -> true once the oldest message is loaded
    this.members = new Map(); // conversation id -> Map(user id -> last_read_seq)
    this.typing = new Map(); // conversation id -> Map(user id -> until (ms))
    this.presence = new Map(); // user id -> {online, last_seen_at}
    this.friends = [];
    this.incoming = [];
    this.outgoing = [];
    this.notifications = [];
    this.notificationsUnread = 0;
    this.myReactions = new Set(); // "<message id> <emoji>" seen from this session
    this.open = null; // the conversation on screen, read as it arrives
    this.pendingUsers = new Map();
    this.pendingConversations = new Map();
    this.loaded = false;
    this.held = [];
    setInterval(() => this.#expireTyping(), 1000);
  }

  /** Forget everything (signed out): nothing of one account stays for the next. */
  reset() {
    this.loaded = false;
    this.held = [];
    this.me = null;
    for (const map of [this.users, this.conversations, this.messages, this.complete,
      this.members, this.typing, this.presence, this.myReactions]) map.clear();
    this.friends = [];
    this.incoming = [];
    this.outgoing = [];
    this.notifications = [];
    this.notificationsUnread = 0;
  }

  changed(what) {
    this.dispatchEvent(new CustomEvent("change", { detail: what }));
  }

  // loading --------------------------------------------------------------------------------

  /** Read everything the screens show; events received meanwhile are applied after. */
  async load() {
    this.loaded = false;
    const [me, conversations, notifications] = await Promise.all([
      this.api.me(),
      this.api.conversations(),
      this.api.notifications(),
    ]);
    this.me = me;
    this.users.set(me.id, me);
    this.conversations = new Map(conversations.items.map((c) => [c.id, c]));
    this.messages.clear();
    this.complete.clear();
    this.members.clear();
    this.notifications = notifications.items;
    this.notificationsUnread = notifications.unread_count ?? 0;
    await this.loadGraph();
    this.loaded = true;
    if (this.open) {
      // A screen that stays open through a resync reads its conversation again.
      this.loadMessages(this.open).catch(() => {});
      this.loadMembers(this.open);
    }
    const held = this.held;
    this.held = [];
    for (const event of held) this.apply(event);
    for (const what of ["me", "conversations", "graph", "notifications", "presence"]) {
      this.changed(what);
    }
  }

  async loadGraph() {
    const [friends, incoming, outgoing] = await Promise.all([
      this.api.friends(),
      this.api.friendRequests("incoming"),
      this.api.friendRequests("outgoing"),
    ]);
    this.friends = friends.items;
    this.incoming = incoming.items;
    this.outgoing = outgoing.items;
    for (const u of [...this.friends, ...this.incoming, ...this.outgoing]) this.users.set(u.id, u);
    this.changed("graph");
    this.changed("users");
    await this.loadPresence();
  }

  async loadPresence() {
    const ids = new Set(this.friends.map((f) => f.id));
    for (const c of this.conversations.values()) {
      if (c.kind === "direct") for (const id of c.member_ids || []) ids.add(id);
    }
    ids.delete(this.me?.id);
    const list = [...ids].slice(0, 100);
    if (!list.length) return;
    try {
      const found = await this.api.presence(list);
      for (const p of found.items) this.presence.set(p.user_id, p);
      this.changed("presence");
    } catch {
      // best effort, like presence itself
    }
  }

  async loadMessages(conversationId, { older = false } = {}) {
    const known = this.messages.get(conversationId);
    if (known && !older) return;
    const list = known || new Map();
    const seqs = [...list.values()].map((m) => m.seq);
    const beforeSeq = older && seqs.length ? Math.min(...seqs) : undefined;
    const page = await this.api.messages(conversationId, { beforeSeq });
    for (const m of page.items) this.remember(list, m);
    this.messages.set(conversationId, list);
    if (page.items.length < 50) this.complete.set(conversationId, true);
    this.changed(`messages:${conversationId}`);
  }

  async loadMembers(conversationId) {
    try {
      const page = await this.api.members(conversationId);
      this.members.set(conversationId, new Map(page.items.map((m) => [m.user_id, m.last_read_seq])));
      for (const m of page.items) this.user(m.user_id);
      this.changed(`members:${conversationId}`);
    } catch {
      // receipts are a nicety
    }
  }

  /** A conversation we have not seen (a first message, being added to a group). */
  fetchConversation(id) {
    if (this.pendingConversations.has(id)) return this.pendingConversations.get(id);
    const pending = this.api
      .conversation(id)
      .then((c) => {
        this.conversations.set(c.id, c);
        this.changed("conversations");
        if (c.kind === "direct") this.loadPresence();
        return c;
      })
      .catch(() => null)
      .finally(() => this.pendingConversations.delete(id));
    this.pendingConversations.set(id, pending);
    return pending;
  }

  // users ------------------------------------------------------------------------------------

  /** The profile of `id` if known; asks the server once otherwise ("users" changes). */
  user(id) {
    if (!id) return null;
    const known = this.users.get(id);
    if (known) return known;
    if (!this.pendingUsers.has(id)) {
      this.pendingUsers.set(
        id,
        this.api
          .user(id)
          .then((u) => {
            this.users.set(u.id, u);
            this.changed("users");
          })
          .catch(() => this.users.set(id, { id, username: "unknown", display_name: "Someone" })),
      );
    }
    return null;
  }

  nameOf(id) {
    if (id === null || id === undefined) return "Deleted account";
    const u = this.user(id);
    return u ? u.display_name || u.username : "…";
  }

  /** The other member of a direct conversation, or null. */
  peerOf(conversation) {
    if (conversation?.kind !== "direct") return null;
    return (conversation.member_ids || []).find((id) => id !== this.me?.id) ?? null;
  }

  titleOf(conversation) {
    if (!conversation) return "";
    if (conversation.kind === "direct") {
      const peer = this.peerOf(conversation);
      return peer ? this.nameOf(peer) : "Direct conversation";
    }
    return conversation.title || "Untitled group";
  }

  sortedConversations() {
    return [...this.conversations.values()].sort((a, b) => {
      const at = a.last_message?.created_at || a.updated_at || a.created_at;
      const bt = b.last_message?.created_at || b.updated_at || b.created_at;
      return bt.localeCompare(at);
    });
  }

  sortedMessages(conversationId) {
    const list = this.messages.get(conversationId);
    return list ? [...list.values()].sort((a, b) => a.seq - b.seq) : [];
  }

  totalUnread() {
    let total = 0;
    for (const c of this.conversations.values()) if (!c.muted) total += c.unread_count || 0;
    return total;
  }

  typingIn(conversationId) {
    const now = Date.now();
    const who = this.typing.get(conversationId);
    return who ? [...who].filter(([, until]) => until > now).map(([id]) => id) : [];
  }

  #expireTyping() {
    const now = Date.now();
    for (const [conversationId, who] of this.typing) {
      let dropped = false;
      for (const [id, until] of who) {
        if (until <= now) {
          who.delete(id);
          dropped = true;
        }
      }
      if (dropped) this.changed(`typing:${conversationId}`);
    }
  }

  // local changes ------------------------------------------------------------------------------

  /** Record a message the API returned (the same one arrives as an event too). */
  keepMessage(message) {
    const list = this.messages.get(message.conversation_id);
    if (list) this.remember(list, message);
    this.#touchConversation(message);
    this.changed(`messages:${message.conversation_id}`);
    this.changed("conversations");
  }

  /** Put `message` in `list` unless what is there is newer (deleted, or edited later). */
  remember(list, message) {
    const old = list.get(message.id);
    // Events carry whole messages; never let an older version replace a newer one.
    if (old && old.deleted && !message.deleted) return;
    if (old && old.edited_at && message.edited_at && old.edited_at > message.edited_at) return;
    list.set(message.id, message);
  }

  #touchConversation(message) {
    const c = this.conversations.get(message.conversation_id);
    if (!c) return;
    if (message.seq >= (c.last_message?.seq ?? 0)) {
      c.last_message = message;
    }
    c.last_seq = Math.max(c.last_seq || 0, message.seq);
    if (message.sender_id === this.me?.id) {
      // Sending moves our own read pointer (the server does the same).
      c.last_read_seq = Math.max(c.last_read_seq || 0, message.seq);
    }
  }

  /** Move our read pointer in the open conversation up to its newest message. */
  async markRead(conversationId) {
    const c = this.conversations.get(conversationId);
    if (!c || (c.last_read_seq >= c.last_seq && !c.unread_count)) return;
    const seq = c.last_seq;
    c.last_read_seq = Math.max(c.last_read_seq, seq);
    c.unread_count = 0;
    this.changed("conversations");
    try {
      await this.api.markRead(conversationId, seq);
    } catch {
      // the next message tries again
    }
  }

  // events -------------------------------------------------------------------------------------

  apply(event) {
    if (!this.loaded) {
      this.held.push(event);
      return;
    }
    const handler = HANDLERS[event.type];
    if (handler) handler(this, event);
  }
}

function onMessage(store, event) {
  const m = event.message;
  const c = store.conversations.get(m.conversation_id);
  if (!c) {
    store.fetchConversation(m.conversation_id);
    return;
  }
  const list = store.messages.get(m.conversation_id);
  const isNew = list ? !list.has(m.id) : m.seq > (c.last_message?.seq ?? 0);
  // Thread replies are not in the main timeline (docs/threads.md); they still count.
  if (list && !m.thread_root_id) store.remember(list, m);
  const before = c.last_seq || 0;
  if (event.type === "message.created" && m.seq > before) {
    c.last_message = m;
    c.last_seq = m.seq;
    if (m.sender_id === store.me.id) {
      c.last_read_seq = Math.max(c.last_read_seq || 0, m.seq);
    } else {
      const reading = store.open === m.conversation_id && document.visibilityState === "visible";
      if (!reading) c.unread_count = (c.unread_count || 0) + 1;
      const typists = store.typing.get(m.conversation_id);
      if (typists?.delete(m.sender_id)) store.changed(`typing:${m.conversation_id}`);
    }
  } else if (c.last_message?.id === m.id) {
    c.last_message = m;
  }
  if (event.type === "message.created" && isNew && m.sender_id !== store.me.id) {
    store.dispatchEvent(new CustomEvent("incoming", { detail: m }));
  }
  store.changed(`messages:${m.conversation_id}`);
  store.changed("conversations");
}

function onDeleted(store, event) {
  onMessage(store, { type: "message.deleted", message: event.message });
}

function onReaction(store, event) {
  const list = store.messages.get(event.conversation_id);
  const m = list?.get(event.message_id);
  if (m) {
    list.set(m.id, { ...m, reactions: event.reactions });
  }
  if (event.user_id === store.me.id && event.emoji) {
    const key = `${event.message_id} ${event.emoji}`;
    if (event.added) store.myReactions.add(key);
    else store.myReactions.delete(key);
  }
  store.changed(`messages:${event.conversation_id}`);
}

function onRead(store, event) {
  if (event.user_id === store.me.id) {
    const c = store.conversations.get(event.conversation_id);
    if (c && event.seq > (c.last_read_seq || 0)) {
      c.last_read_seq = event.seq;
      // Read on another device: ask how many are left.
      if (event.seq >= c.last_seq) c.unread_count = 0;
      else store.fetchConversation(c.id);
      store.changed("conversations");
    }
    return;
  }
  const readers = store.members.get(event.conversation_id);
  if (readers) {
    readers.set(event.user_id, Math.max(readers.get(event.user_id) || 0, event.seq));
    store.changed(`members:${event.conversation_id}`);
  }
}

function onTyping(store, event) {
  if (event.user_id === store.me.id) return;
  let who = store.typing.get(event.conversation_id);
  if (!who) store.typing.set(event.conversation_id, (who = new Map()));
  who.set(event.user_id, Date.now() + TYPING_MS);
  store.user(event.user_id);
  store.changed(`typing:${event.conversation_id}`);
}

function onPresence(store, event) {
  store.presence.set(event.user_id, { online: event.online, last_seen_at: event.last_seen_at });
  store.changed("presence");
}

function onConversation(store, event) {
  const fresh = event.conversation;
  const c = store.conversations.get(fresh.id);
  if (!c) {
    store.fetchConversation(fresh.id);
    return;
  }
  Object.assign(c, {
    title: fresh.title,
    message_ttl_seconds: fresh.message_ttl_seconds,
    member_count: fresh.member_count,
    owner_id: fresh.owner_id,
  });
  store.changed("conversations");
}

function onMemberAdded(store, event) {
  const id = event.conversation.id;
  store.fetchConversation(id); // new to us, or its member list changed
  if (store.members.has(id)) store.loadMembers(id);
}

function onMemberRemoved(store, event) {
  if (event.user_id === store.me.id) {
    store.conversations.delete(event.conversation_id);
    store.messages.delete(event.conversation_id);
    store.changed("conversations");
    return;
  }
  store.members.get(event.conversation_id)?.delete(event.user_id);
  store.fetchConversation(event.conversation_id);
}

function onMuted(store, event) {
  const c = store.conversations.get(event.conversation_id);
  if (c) {
    c.muted = event.muted;
    store.changed("conversations");
  }
}

function onGraph(store) {
  store.loadGraph().catch(() => {});
}

function onNotification(store, event) {
  const n = event.notification;
  if (store.notifications.some((x) => x.id === n.id)) return;
  store.notifications.unshift(n);
  if (!n.read) store.notificationsUnread += 1;
  store.changed("notifications");
}

const HANDLERS = {
  "message.created": onMessage,
  "message.updated": onMessage,
  "message.deleted": onDeleted,
  "reaction.updated": onReaction,
  "read.updated": onRead,
  typing: onTyping,
  presence: onPresence,
  "conversation.updated": onConversation,
  "member.added": onMemberAdded,
  "member.removed": onMemberRemoved,
  "conversation.muted": onMuted,
  "friend.request": onGraph,
  "friend.accepted": onGraph,
  "follow.new": onGraph,
  notification: onNotification,
};
