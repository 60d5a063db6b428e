// A message's attachments: images as thumbnails (click to see the whole image), other
// files as download links. Their bytes need the session's token, so they are fetched and
// shown from blob: URLs, each fetched once per page.
import { alertUser, h } from "../dom.js";

const THUMB = 256; // the thumbnail's largest side, in CSS pixels
const urls = new Map(); // "id" or "id:thumb" -> Promise of a blob: URL

function objectUrl(api, id, thumbnail) {
  const key = thumbnail ? `${id}:thumb` : id;
  if (!urls.has(key)) {
    const url = api.attachmentBlob(id, { thumbnail }).then((blob) => URL.createObjectURL(blob));
    url.catch(() => urls.delete(key)); // try again next time
    urls.set(key, url);
  }
  return urls.get(key);
}

export function nameOf(a) {
  return a.filename || (isImage(a) ? "image" : "file");
}

function isImage(a) {
  return a.content_type.startsWith("image/") && a.width && a.height;
}

function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The list of `attachments` (null when there are none). */
export function attachmentList(api, attachments) {
  if (!attachments?.length) return null;
  return h(
    "ul",
    { class: "attachments", "aria-label": "Attachments" },
    attachments.map((a) => h("li", {}, isImage(a) ? imageItem(api, a) : fileItem(api, a))),
  );
}

function imageItem(api, a) {
  const scale = Math.min(1, THUMB / Math.max(a.width, a.height));
  const img = h("img", {
    class: "thumb", alt: nameOf(a),
    width: Math.max(1, Math.round(a.width * scale)),
    height: Math.max(1, Math.round(a.height * scale)),
  });
  objectUrl(api, a.id, true)
    .catch(() => objectUrl(api, a.id, false)) // no thumbnail for this kind: the image itself
    .then((url) => { img.src = url; })
    .catch(() => { img.alt = `${nameOf(a)} (not available)`; });
  return h(
    "button",
    {
      type: "button", class: "image-open", "aria-label": `Open image ${nameOf(a)}`,
      onclick: () => openImage(api, a),
    },
    img,
  );
}

async function openImage(api, a) {
  let url;
  try {
    url = await objectUrl(api, a.id, false);
  } catch (error) {
    alertUser(error.message);
    return;
  }
  const close = h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Close");
  const dialog = h(
    "dialog",
    { class: "image-view", "aria-label": nameOf(a), onclose: () => dialog.remove() },
    h("img", { src: url, alt: nameOf(a) }),
    h("p", {}, h("a", { href: url, download: nameOf(a) }, `Download ${nameOf(a)}`), " ", close),
  );
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}

function fileItem(api, a) {
  return h(
    "a",
    {
      href: "#", class: "file-link", "aria-label": `Download ${nameOf(a)}, ${sizeText(a.size)}`,
      onclick: async (e) => {
        e.preventDefault();
        try {
          const url = await objectUrl(api, a.id, false);
          const save = h("a", { href: url, download: nameOf(a), hidden: true });
          document.body.append(save);
          save.click();
          save.remove();
        } catch (error) {
          alertUser(error.message);
        }
      },
    },
    `📎 ${nameOf(a)} (${sizeText(a.size)})`,
  );
}
