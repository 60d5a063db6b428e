// The admin console's place. It is filled in once the admin API (/v1/admin/..., docs/api.md
// "Additions") exists: users, reports, webhooks, the audit log. The navigation shows its
// link only to admins (see isAdmin in app.js).
import { h } from "../dom.js";

export function adminView() {
  return {
    node: h(
      "div",
      { class: "page" },
      h("h1", { tabindex: "-1" }, "Administration"),
      h("p", {}, "The admin console arrives with the admin API. Until then, use the socius CLI (socius admin …)."),
    ),
  };
}
