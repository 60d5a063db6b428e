// Sign in or create an account.
import { h } from "../dom.js";

export function authView(ctx, { mode = "login", notice = "" } = {}) {
  const creating = mode === "register";
  const error = h("p", { class: "form-error", role: "alert" });
  const username = h("input", {
    id: "auth-username", name: "username", required: true, autocomplete: "username",
    autocapitalize: "none", spellcheck: "false",
    ...(creating ? { pattern: "[A-Za-z0-9_]{3,32}", "aria-describedby": "username-hint" } : {}),
  });
  const password = h("input", {
    id: "auth-password", name: "password", type: "password", required: true,
    minlength: creating ? 8 : undefined,
    autocomplete: creating ? "new-password" : "current-password",
    ...(creating ? { "aria-describedby": "password-hint" } : {}),
  });
  const displayName = h("input", {
    id: "auth-display-name", name: "display_name", maxlength: 64, autocomplete: "nickname",
  });
  const submit = h("button", { type: "submit", class: "primary" }, creating ? "Create account" : "Sign in");

  const others = h("div", { class: "other-ways", "aria-label": "Other ways to sign in" });
  const form = h(
    "form",
    {
      class: "card auth-form",
      "aria-labelledby": "auth-title",
      onsubmit: async (e) => {
        e.preventDefault();
        error.textContent = "";
        submit.disabled = true;
        try {
          if (creating) {
            await ctx.api.register(username.value.trim().toLowerCase(), password.value, displayName.value.trim());
          } else {
            await ctx.api.login(username.value.trim(), password.value);
          }
          await ctx.signedIn();
        } catch (err) {
          error.textContent = err.message || String(err);
          submit.disabled = false;
        }
      },
    },
    h("h1", { id: "auth-title", tabindex: "-1" }, creating ? "Create your account" : "Sign in to socius"),
    notice ? h("p", { class: "notice", role: "status" }, notice) : null,
    h("label", { for: "auth-username" }, creating ? "Username" : "Username or email"),
    username,
    creating ? h("p", { id: "username-hint", class: "hint" }, "3 to 32 letters, digits or _") : null,
    creating ? h("label", { for: "auth-display-name" }, "Display name (optional)") : null,
    creating ? displayName : null,
    h("label", { for: "auth-password" }, "Password"),
    password,
    creating ? h("p", { id: "password-hint", class: "hint" }, "At least 8 characters") : null,
    error,
    submit,
    h(
      "p",
      { class: "switch" },
      creating ? "Already have an account? " : "New here? ",
      h("a", { href: creating ? "#/login" : "#/register" }, creating ? "Sign in" : "Create an account"),
    ),
    creating ? null : others,
    h("p", { class: "switch" }, h("a", { href: "/docs" }, "API reference")),
  );
  if (!creating) otherWays(ctx, others, error);
  return { node: h("div", { class: "auth" }, form) };
}

/** "Sign in with <provider>" links (GET .../start: the browser goes to the provider and
 * comes back with #oidc_code=...) and a passkey button, under the password form. */
async function otherWays(ctx, box, error) {
  const buttons = [];
  if (window.PublicKeyCredential) {
    buttons.push(h("button", {
      type: "button", class: "passkey",
      onclick: async (e) => {
        const button = e.currentTarget;
        error.textContent = "";
        button.disabled = true;
        try {
          await ctx.api.passkeyLogin();
          await ctx.signedIn();
        } catch (err) {
          // NotAllowedError: the person closed the browser's dialog; nothing to say.
          error.textContent = err.name === "NotAllowedError" ? "" : err.message || String(err);
        } finally {
          button.disabled = false;
        }
      },
    }, "Use a passkey"));
  }
  try {
    for (const provider of await ctx.api.oidcProviders()) {
      buttons.push(h("a", { class: "button oidc", href: provider.start_url, dataset: { provider: provider.name } },
        `Sign in with ${provider.display_name}`));
    }
  } catch {
    // no providers listed: the password form still works
  }
  box.replaceChildren(...buttons);
}
