// People: search, friend requests (incoming and outgoing), friends.
import { h, replaceChildren } from "../dom.js";
import { act, listen, message, personLine, relationActions } from "./common.js";

export function peopleView(ctx) {
  const { api, store } = ctx;
  const query = h("input", { id: "people-q", type: "search", required: true, maxlength: 64, autocomplete: "off" });
  const results = h("ul", { class: "people", "aria-label": "Search results" });
  const resultsStatus = h("p", { class: "muted", role: "status" });
  let found = [];
  let relations = new Map();

  async function search(button) {
    const q = query.value.trim();
    if (!q) return;
    const page = await act(button, () => api.searchUsers(q));
    if (!page) return;
    found = page.items.filter((u) => u.id !== store.me.id);
    for (const u of found) store.users.set(u.id, u);
    relations = new Map();
    if (found.length) {
      const rels = await act(null, () => api.relationships(found.map((u) => u.id)));
      for (const r of rels?.items || []) relations.set(r.user_id, r);
    }
    resultsStatus.textContent = found.length ? `${found.length} found` : "Nobody found.";
    renderResults();
  }

  function renderResults() {
    replaceChildren(
      results,
      ...found.map((u) =>
        personLine(
          store, u,
          ...relationActions(ctx, u.id, relations.get(u.id), (rel) => {
            if (rel && rel.user_id) relations.set(rel.user_id, rel);
            renderResults();
          }),
        ),
      ),
    );
  }

  const incoming = h("ul", { class: "people", "aria-labelledby": "incoming-title" });
  const outgoing = h("ul", { class: "people", "aria-labelledby": "outgoing-title" });
  const friends = h("ul", { class: "people", "aria-labelledby": "friends-title" });
  const incomingSection = h("section", { "aria-labelledby": "incoming-title" },
    h("h2", { id: "incoming-title" }, "Friend requests"), incoming);
  const outgoingSection = h("section", { "aria-labelledby": "outgoing-title" },
    h("h2", { id: "outgoing-title" }, "Requests you sent"), outgoing);

  function renderGraph() {
    const fixed = (rel) => ({ friend: false, request_sent: false, request_received: false, ...rel });
    replaceChildren(
      incoming,
      ...(store.incoming.length
        ? store.incoming.map((u) =>
            personLine(store, u, ...relationActions(ctx, u.id, fixed({ request_received: true }))))
        : [h("li", { class: "empty" }, "No pending requests.")]),
    );
    outgoingSection.hidden = !store.outgoing.length;
    replaceChildren(
      outgoing,
      ...store.outgoing.map((u) => personLine(store, u, ...relationActions(ctx, u.id, fixed({ request_sent: true })))),
    );
    replaceChildren(
      friends,
      ...(store.friends.length
        ? store.friends.map((u) =>
            personLine(
              store, u,
              h("button", {
                type: "button", "aria-label": `Message ${u.display_name || u.username}`,
                dataset: { key: `message-${u.id}` },
                onclick: (e) => message(ctx, u.id, e.currentTarget),
              }, "Message"),
            ))
        : [h("li", { class: "empty" }, "No friends yet: search for someone above.")]),
    );
    if (found.length) renderResults();
  }

  renderGraph();
  const stop = listen(store, (what) => {
    if (what === "graph" || what === "presence" || what === "users") renderGraph();
  });
  store.loadGraph().catch(() => {});

  const node = h(
    "div",
    { class: "page people-page" },
    h("h1", { tabindex: "-1" }, "People"),
    h(
      "form",
      {
        role: "search", class: "search",
        onsubmit: (e) => { e.preventDefault(); search(e.submitter); },
      },
      h("label", { for: "people-q" }, "Search people"),
      h("div", { class: "row" }, query, h("button", { type: "submit", class: "primary" }, "Search")),
    ),
    resultsStatus,
    results,
    incomingSection,
    outgoingSection,
    h("section", { "aria-labelledby": "friends-title" }, h("h2", { id: "friends-title" }, "Friends"), friends),
  );
  return { node, dispose: stop };
}
