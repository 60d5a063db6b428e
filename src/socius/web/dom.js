// Small DOM helpers: elements are built with h(), never from HTML strings, so text from
// the server is always text (no injection).

/** h("button", {class: "x", onclick: fn, "aria-label": "..."}, "child", node, [more]) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key in el && typeof value !== "string") {
      el[key] = value; // checked, value, disabled ...
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `el`, keeping the focus on an element with the same data-key. */
export function replaceChildren(el, ...children) {
  const key = document.activeElement?.dataset?.key;
  el.replaceChildren();
  append(el, children);
  if (key && !document.activeElement?.dataset?.key) {
    const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

let announceTimer = null;
/** Say `text` to screen readers through the polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  clearTimeout(announceTimer);
  // A fresh text node after a beat is announced even when the text repeats.
  announceTimer = setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** Show an error (or notice) in the alert region; it goes away after a while. */
export function alertUser(text) {
  const region = document.getElementById("alerts");
  if (!region) return;
  const item = h("p", { class: "alert" }, text);
  region.append(item);
  setTimeout(() => item.remove(), 8000);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFormat = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});

export function shortTime(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  const sameDay = when.toDateString() === new Date().toDateString();
  return (sameDay ? timeFormat : dateFormat).format(when);
}

export function initials(name) {
  const letters = String(name || "?").trim().split(/\s+/).slice(0, 2).map((w) => w[0]);
  return letters.join("").toUpperCase() || "?";
}

/** An id unique enough for client_msg_id; works outside secure contexts too. */
export function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
