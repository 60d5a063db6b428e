// The admin console (docs/admin.md): accounts (search, disable / enable, grant / revoke
// administrator) and the audit log. The navigation shows its link only when /v1/me says
// the user is an administrator; the server refuses everyone else (403 admin_required).
import { announce, h, replaceChildren, shortTime } from "../dom.js";
import { act } from "./common.js";

const PAGE = 20;

const VERBS = {
  "user.create": "created",
  "user.disable": "disabled",
  "user.enable": "enabled",
  "user.grant_admin": "made an administrator:",
  "user.revoke_admin": "removed as administrator:",
  "keys.rotate": "rotated the token signing keys",
};

const ACTIONS = {
  disable: { label: "Disable", done: "disabled" },
  enable: { label: "Enable", done: "enabled" },
  "grant-admin": { label: "Make admin", done: "is now an administrator" },
  "revoke-admin": { label: "Remove admin", done: "is no longer an administrator" },
};

function who(entry) {
  if (entry.via === "cli") return "The command line";
  return entry.actor_username ? `@${entry.actor_username}` : `Account ${entry.actor_id} (erased)`;
}

function what(entry) {
  if (!entry.target_id) return "";
  if (entry.target_type === "user") {
    return entry.target_username ? `@${entry.target_username}` : `account ${entry.target_id} (erased)`;
  }
  return `${entry.target_type} ${entry.target_id}`;
}

function detailsText(entry) {
  const d = entry.details || {};
  const parts = [];
  if (d.reason) parts.push(`Reason: ${d.reason}`);
  if (d.sessions_revoked !== undefined) parts.push(`${d.sessions_revoked} session(s) ended`);
  if (d.kid) parts.push(`key ${d.kid}`);
  if (d.is_admin) parts.push("as an administrator");
  if (d.erased) parts.push("account erased since");
  return parts.join(" · ");
}

function auditLine(entry) {
  const verb = VERBS[entry.action] || entry.action;
  const origin = [entry.ip && `from ${entry.ip}`, entry.request_id && `request ${entry.request_id}`]
    .filter(Boolean)
    .join(" · ");
  const details = detailsText(entry);
  return h(
    "li",
    { class: "audit-entry", dataset: { action: entry.action } },
    h("p", {}, h("strong", {}, who(entry)), ` ${verb} `, h("strong", {}, what(entry))),
    details ? h("p", { class: "audit-details" }, details) : null,
    h(
      "p",
      { class: "muted" },
      h("time", { datetime: entry.created_at }, shortTime(entry.created_at)),
      ` · ${entry.action}`,
      origin ? ` · ${origin}` : "",
    ),
  );
}

export function adminView(ctx) {
  const { api, store } = ctx;
  if (!store.me?.is_admin) {
    return {
      node: h(
        "div",
        { class: "page" },
        h("h1", { tabindex: "-1" }, "Administration"),
        h("p", {}, "This page is for administrators."),
      ),
    };
  }

  // accounts ------------------------------------------------------------------------------
  const query = h("input", { id: "admin-q", type: "search", maxlength: 64, autocomplete: "off" });
  const status = h(
    "select",
    { id: "admin-status" },
    h("option", { value: "" }, "All"),
    h("option", { value: "active" }, "Active"),
    h("option", { value: "disabled" }, "Disabled"),
  );
  const reason = h("input", { id: "admin-reason", type: "text", maxlength: 500, autocomplete: "off" });
  const users = h("ul", { class: "people admin-users", "aria-labelledby": "admin-users-title" });
  const usersStatus = h("p", { class: "muted", role: "status" });
  const moreUsers = h("button", { type: "button", class: "secondary", hidden: true }, "More accounts");
  let shown = [];
  let usersCursor = null;

  async function loadUsers(reset, button) {
    const page = await act(button, () =>
      api.adminUsers({
        q: query.value.trim(),
        status: status.value,
        cursor: reset ? null : usersCursor,
        limit: PAGE,
      }),
    );
    if (!page) return;
    shown = reset ? page.items : shown.concat(page.items);
    usersCursor = page.next_cursor;
    moreUsers.hidden = !usersCursor;
    usersStatus.textContent = shown.length ? `${shown.length} account(s) shown` : "No account found.";
    renderUsers();
  }

  async function run(button, user, action) {
    const note = reason.value.trim();
    const updated = await act(button, () => api.adminAction(user.id, action, note || undefined));
    if (!updated) return;
    reason.value = "";
    shown = shown.map((u) => (u.id === updated.id ? updated : u));
    renderUsers();
    announce(`@${updated.username} ${ACTIONS[action].done}.`);
    if (updated.id === store.me.id && !updated.is_admin) {
      store.me = { ...store.me, is_admin: false }; // this page and its link go at once
      store.changed("me");
      ctx.go("#/profile");
      return;
    }
    loadAudit(true);
  }

  function button(user, action) {
    const { label } = ACTIONS[action];
    return h(
      "button",
      {
        type: "button",
        class: action === "disable" ? "secondary danger" : "secondary",
        "aria-label": `${label}: @${user.username}`,
        dataset: { key: `${action}-${user.id}` },
        onclick: (e) => run(e.currentTarget, user, action),
      },
      label,
    );
  }

  function userLine(user) {
    const self = user.id === store.me.id;
    const facts = [
      user.email || "no email",
      user.is_active ? "active" : "disabled",
      user.is_admin ? "administrator" : null,
      `joined ${shortTime(user.created_at)}`,
      user.last_login_at ? `last login ${shortTime(user.last_login_at)}` : "no login on record",
    ].filter(Boolean);
    return h(
      "li",
      { class: user.is_active ? "person admin-user" : "person admin-user disabled", dataset: { id: user.id } },
      h(
        "div",
        { class: "person-text" },
        h("a", { href: `#/users/${user.id}` }, user.display_name || user.username),
        h("span", { class: "muted" }, ` @${user.username}${self ? " (you)" : ""}`),
        h("span", { class: "presence admin-facts" }, facts.join(" · ")),
      ),
      h(
        "div",
        { class: "actions" },
        self ? null : button(user, user.is_active ? "disable" : "enable"),
        button(user, user.is_admin ? "revoke-admin" : "grant-admin"),
      ),
    );
  }

  function renderUsers() {
    replaceChildren(users, ...shown.map(userLine));
  }

  moreUsers.addEventListener("click", (e) => loadUsers(false, e.currentTarget));

  // audit log -----------------------------------------------------------------------------
  const actionFilter = h(
    "select",
    { id: "audit-action" },
    h("option", { value: "" }, "Every action"),
    ...Object.keys(VERBS).map((a) => h("option", { value: a }, a)),
  );
  const entries = h("ol", { class: "audit", "aria-labelledby": "audit-title" });
  const moreEntries = h("button", { type: "button", class: "secondary", hidden: true }, "Older entries");
  let logged = [];
  let auditCursor = null;

  async function loadAudit(reset, button) {
    const page = await act(button, () =>
      api.adminAudit({ action: actionFilter.value, cursor: reset ? null : auditCursor, limit: PAGE }),
    );
    if (!page) return;
    logged = reset ? page.items : logged.concat(page.items);
    auditCursor = page.next_cursor;
    moreEntries.hidden = !auditCursor;
    replaceChildren(
      entries,
      ...(logged.length ? logged.map(auditLine) : [h("li", { class: "empty" }, "Nothing logged yet.")]),
    );
  }

  actionFilter.addEventListener("change", () => loadAudit(true));
  moreEntries.addEventListener("click", (e) => loadAudit(false, e.currentTarget));

  loadUsers(true);
  loadAudit(true);

  const node = h(
    "div",
    { class: "page admin-page" },
    h("h1", { tabindex: "-1" }, "Administration"),
    h(
      "section",
      { "aria-labelledby": "admin-users-title" },
      h("h2", { id: "admin-users-title" }, "Accounts"),
      h(
        "form",
        {
          role: "search",
          class: "search",
          onsubmit: (e) => {
            e.preventDefault();
            loadUsers(true, e.submitter);
          },
        },
        h("label", { for: "admin-q" }, "Find accounts"),
        h("div", { class: "row" }, query, h("button", { type: "submit", class: "primary" }, "Find")),
        h("label", { for: "admin-status" }, "Status"),
        status,
      ),
      h("label", { for: "admin-reason" }, "Reason for your next action (optional)"),
      reason,
      h("p", { class: "hint" }, "Kept with the action in the audit log."),
      usersStatus,
      users,
      moreUsers,
    ),
    h(
      "section",
      { "aria-labelledby": "audit-title" },
      h("h2", { id: "audit-title" }, "Audit log"),
      h("label", { for: "audit-action" }, "Show"),
      actionFilter,
      entries,
      moreEntries,
    ),
  );
  return { node };
}
