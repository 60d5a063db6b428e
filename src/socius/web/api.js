// The REST API (docs/api.md): a fetch wrapper that keeps the session's tokens, refreshes
// the access token before it expires or after a 401, and turns error envelopes into
// ApiError. Only paths of this server are called.

const STORAGE_KEY = "socius.session";
const EARLY_REFRESH_MS = 30_000; // refresh this long before the access token expires
// (or after three quarters of its life, when it lives less than two minutes)

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export class Api extends EventTarget {
  constructor(storage = window.localStorage) {
    super();
    this.storage = storage;
    this.session = this.#read();
    this.refreshing = null;
    // Another tab signed in, refreshed or signed out: follow it.
    window.addEventListener("storage", (e) => {
      if (e.key !== STORAGE_KEY) return;
      const before = this.session?.user_id;
      this.session = this.#read();
      if (!this.session) this.dispatchEvent(new CustomEvent("signedout", { detail: "elsewhere" }));
      else if (this.session.user_id !== before) location.reload();
    });
  }

  get signedIn() {
    return Boolean(this.session);
  }

  get userId() {
    return this.session?.user_id ?? null;
  }

  #read() {
    try {
      const value = JSON.parse(this.storage.getItem(STORAGE_KEY) || "null");
      return value && value.refresh_token ? value : null;
    } catch {
      return null;
    }
  }

  #expiring(session) {
    return session.expires_at - Date.now() < (session.early_ms ?? EARLY_REFRESH_MS);
  }

  #save(auth) {
    this.session = {
      user_id: auth.user.id,
      access_token: auth.access_token,
      refresh_token: auth.refresh_token,
      expires_at: Date.now() + auth.expires_in * 1000,
      early_ms: Math.min(EARLY_REFRESH_MS, (auth.expires_in * 1000) / 4),
    };
    this.storage.setItem(STORAGE_KEY, JSON.stringify(this.session));
  }

  #forget(reason) {
    const had = this.session;
    this.session = null;
    this.storage.removeItem(STORAGE_KEY);
    if (had) this.dispatchEvent(new CustomEvent("signedout", { detail: reason }));
  }

  /** A usable access token, refreshed first when it is about to expire. */
  async accessToken() {
    if (!this.session) throw new ApiError(401, "signed_out", "You are signed out.");
    if (this.#expiring(this.session)) await this.refresh();
    if (!this.session) throw new ApiError(401, "signed_out", "You are signed out.");
    return this.session.access_token;
  }

  /** Trade the refresh token for a new pair; one at a time across this origin's tabs
   * (a refresh token works once: two tabs spending the same one would end the session). */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.#refreshOnce().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async #refreshOnce() {
    const spent = this.session?.refresh_token;
    const run = async () => {
      const stored = this.#read();
      if (!stored) {
        this.#forget("expired");
        throw new ApiError(401, "signed_out", "You are signed out.");
      }
      if (stored.refresh_token !== spent && !this.#expiring(stored)) {
        this.session = stored; // another tab refreshed meanwhile
        return;
      }
      let response;
      try {
        response = await fetch("/v1/auth/refresh", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refresh_token: stored.refresh_token }),
        });
      } catch (error) {
        throw new ApiError(0, "offline", "The server cannot be reached.");
      }
      if (response.status === 401 || response.status === 403) {
        this.#forget("expired");
        throw new ApiError(401, "session_ended", "Your session has ended; please sign in.");
      }
      if (!response.ok) throw await toError(response);
      this.#save(await response.json());
    };
    if (navigator.locks) return navigator.locks.request("socius-refresh", run);
    return run();
  }

  /** One API call; `auth` false for the calls made before signing in. `content`: raw
   * bytes (a File or Blob) to send instead of a JSON `body`; `as: "blob"` answers the
   * response's bytes as a Blob instead of its JSON. */
  async call(method, path, { body, query, auth = true, content, as = "json" } = {}) {
    let url = path;
    if (query) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, v);
      const text = params.toString();
      if (text) url += `?${text}`;
    }
    for (let attempt = 0; ; attempt++) {
      const headers = as === "json" ? { accept: "application/json" } : {};
      if (body !== undefined) headers["content-type"] = "application/json";
      if (content !== undefined) headers["content-type"] = "application/octet-stream";
      if (auth) headers.authorization = `Bearer ${await this.accessToken()}`;
      let response;
      try {
        response = await fetch(url, {
          method,
          headers,
          body: content !== undefined ? content : body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (error) {
        throw new ApiError(0, "offline", "The server cannot be reached.");
      }
      if (response.status === 401 && auth && attempt === 0) {
        await this.refresh(); // the token may have been revoked or expired early
        continue;
      }
      if (response.status === 401 && auth) this.#forget("expired");
      if (!response.ok) throw await toError(response);
      if (response.status === 204) return null;
      return as === "blob" ? response.blob() : response.json();
    }
  }

  // identity ------------------------------------------------------------------------------
  async register(username, password, displayName) {
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    const auth = await this.call("POST", "/v1/auth/register", { body, auth: false });
    this.#save(auth);
    return auth.user;
  }

  async login(username, password) {
    const auth = await this.call("POST", "/v1/auth/login", {
      body: { username, password }, auth: false,
    });
    this.#save(auth);
    return auth.user;
  }

  /** The OpenID Connect providers to show a "Sign in with ..." button for. */
  async oidcProviders() {
    return (await this.call("GET", "/v1/auth/oidc", { auth: false })).items;
  }

  /** Trade the one-time code the provider's callback put in the URL for a session. */
  async oidcExchange(code) {
    const auth = await this.call("POST", "/v1/auth/oidc/exchange", { body: { code }, auth: false });
    return this.#signIn(auth);
  }

  /** Sign in with a passkey of this site (no username: the browser offers them). */
  async passkeyLogin() {
    const { options } = await this.call("POST", "/v1/auth/passkey/begin", { auth: false });
    const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
    const auth = await this.call("POST", "/v1/auth/passkey/finish", {
      body: { credential: credentialJson(credential) }, auth: false,
    });
    return this.#signIn(auth);
  }

  #signIn(auth) {
    if (auth.mfa_required) {
      throw new ApiError(403, "mfa_required",
        "This account asks for a second factor, which this client cannot take yet: sign in with its password in an app that can, or with a passkey.");
    }
    this.#save(auth);
    return auth.user;
  }

  async logout() {
    try {
      if (this.session) await this.call("POST", "/v1/auth/logout");
    } finally {
      this.#forget("logout");
    }
  }

  me() { return this.call("GET", "/v1/me"); }
  updateMe(changes) { return this.call("PATCH", "/v1/me", { body: changes }); }
  user(id) { return this.call("GET", `/v1/users/${enc(id)}`); }
  searchUsers(q) { return this.call("GET", "/v1/users/search", { query: { q, limit: 20 } }); }
  relationships(ids) {
    return this.call("GET", "/v1/relationships", { query: { ids: ids.join(",") } });
  }

  // graph ---------------------------------------------------------------------------------
  friends() { return this.call("GET", "/v1/friends", { query: { limit: 100 } }); }
  friendRequests(direction) {
    return this.call("GET", "/v1/friends/requests", { query: { direction, limit: 100 } });
  }
  sendFriendRequest(userId) {
    return this.call("POST", "/v1/friends/requests", { body: { user_id: userId } });
  }
  acceptFriend(userId) { return this.call("POST", `/v1/friends/requests/${enc(userId)}/accept`); }
  declineFriend(userId) { return this.call("POST", `/v1/friends/requests/${enc(userId)}/decline`); }
  cancelFriendRequest(userId) { return this.call("DELETE", `/v1/friends/requests/${enc(userId)}`); }
  unfriend(userId) { return this.call("DELETE", `/v1/friends/${enc(userId)}`); }
  presence(ids) { return this.call("GET", "/v1/presence", { query: { ids: ids.join(",") } }); }

  // conversations -------------------------------------------------------------------------
  conversations() { return this.call("GET", "/v1/conversations", { query: { limit: 100 } }); }
  conversation(id) { return this.call("GET", `/v1/conversations/${enc(id)}`); }
  openDirect(userId) {
    return this.call("POST", "/v1/conversations", { body: { kind: "direct", member_ids: [userId] } });
  }
  createGroup(title, memberIds) {
    return this.call("POST", "/v1/conversations", {
      body: { kind: "group", title, member_ids: memberIds },
    });
  }
  members(id) {
    return this.call("GET", `/v1/conversations/${enc(id)}/members`, { query: { limit: 100 } });
  }
  messages(id, { beforeSeq, limit = 50 } = {}) {
    return this.call("GET", `/v1/conversations/${enc(id)}/messages`, {
      query: { before_seq: beforeSeq, limit },
    });
  }
  send(id, body, clientMsgId, attachmentIds = []) {
    const message = { client_msg_id: clientMsgId, body };
    if (attachmentIds.length) message.attachment_ids = attachmentIds;
    return this.call("POST", `/v1/conversations/${enc(id)}/messages`, { body: message });
  }
  /** Upload a File (its type is read from its bytes by the server); the attachment. */
  upload(file) {
    return this.call("POST", "/v1/uploads", {
      content: file, query: { filename: file.name || undefined },
    });
  }
  /** An attachment's bytes (or its thumbnail's) as a Blob: they need the session's token. */
  attachmentBlob(attachmentId, { thumbnail = false } = {}) {
    const path = `/v1/attachments/${enc(attachmentId)}${thumbnail ? "/thumbnail" : ""}`;
    return this.call("GET", path, { query: thumbnail ? { size: 256 } : undefined, as: "blob" });
  }
  edit(id, messageId, body) {
    return this.call("PATCH", `/v1/conversations/${enc(id)}/messages/${enc(messageId)}`, {
      body: { body },
    });
  }
  deleteMessage(id, messageId) {
    return this.call("DELETE", `/v1/conversations/${enc(id)}/messages/${enc(messageId)}`);
  }
  react(id, messageId, emoji, on) {
    const path = `/v1/conversations/${enc(id)}/messages/${enc(messageId)}/reactions/${enc(emoji)}`;
    return this.call(on ? "PUT" : "DELETE", path);
  }
  markRead(id, seq) {
    return this.call("POST", `/v1/conversations/${enc(id)}/read`, { body: { seq } });
  }

  // administration (docs/admin.md; administrators only) ---------------------------------
  adminUsers({ q, status, cursor, limit = 20 } = {}) {
    return this.call("GET", "/v1/admin/users", {
      query: { q: q || undefined, status: status || undefined, cursor, limit },
    });
  }
  adminAction(userId, action, reason) {
    return this.call("POST", `/v1/admin/users/${enc(userId)}/${action}`, {
      body: reason ? { reason } : undefined,
    });
  }
  adminAudit({ action, cursor, limit = 20 } = {}) {
    return this.call("GET", "/v1/admin/audit", {
      query: { action: action || undefined, cursor, limit },
    });
  }

  // inbox ---------------------------------------------------------------------------------
  notifications() { return this.call("GET", "/v1/notifications", { query: { limit: 50 } }); }
  markNotificationsRead(upToId) {
    return this.call("POST", "/v1/notifications/read", { body: { up_to_id: upToId } });
  }
}

function enc(value) {
  return encodeURIComponent(value);
}

async function toError(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not JSON: keep the status
  }
  const message = error.message || `${response.status} ${response.statusText}`;
  return new ApiError(response.status, error.code || `http_${response.status}`, message, error.details);
}

// WebAuthn's options and answers carry bytes; the API speaks base64url (its JSON form).
function fromB64u(text) {
  const plain = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(plain + "=".repeat((4 - (plain.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

function toB64u(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function requestOptions(options) {
  if (window.PublicKeyCredential?.parseRequestOptionsFromJSON) {
    return PublicKeyCredential.parseRequestOptionsFromJSON(options);
  }
  return {
    ...options,
    challenge: fromB64u(options.challenge),
    allowCredentials: (options.allowCredentials || []).map((c) => ({ ...c, id: fromB64u(c.id) })),
  };
}

function credentialJson(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const r = credential.response;
  return {
    id: credential.id,
    rawId: toB64u(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: toB64u(r.clientDataJSON),
      authenticatorData: toB64u(r.authenticatorData),
      signature: toB64u(r.signature),
      userHandle: r.userHandle ? toB64u(r.userHandle) : null,
    },
    clientExtensionResults: credential.getClientExtensionResults?.() ?? {},
  };
}
