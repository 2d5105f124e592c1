// The full-screen viewer: PhotoSwipe shows the server's screen-sized preview,
// steps through the photos on show (arrow keys, swipe), closes on Esc, and
// carries an info panel with the photo's details and what to do with it.
import PhotoSwipeLightbox from "./vendor/photoswipe/photoswipe-lightbox.esm.min.js";
import { baseName, dateTaken, fileSize, folderOf } from "./format.js";

const PREVIEW_SIDE = 2048; // the API's previews are at most this long on their longest side
const WIDE = window.matchMedia("(min-width: 900px)");
const INFO_ICON = '<path d="M16 5a11 11 0 1 0 0 22 11 11 0 0 0 0-22Zm1.5 17h-3v-8h3v8Zm0-10h-3V9h3v3Z" id="pswp__icn-info"/>';

function slide(result) {
  const w = result.width || 1600, h = result.height || 1200;
  const scale = Math.min(1, PREVIEW_SIDE / Math.max(w, h));
  return {
    src: result.preview_url || result.image_url, msrc: result.thumbnail_url,
    width: Math.round(w * scale), height: Math.round(h * scale), alt: nameOf(result), result,
  };
}

export function nameOf(result) {
  return result.name || baseName(result.path);
}

export class Viewer {
  // actions: {moreLike(result), showFolder(result)}; onChange(result) as the photo changes; onClose().
  constructor({ actions, onChange, onClose, onNearEnd }) {
    this.showInfo = WIDE.matches;
    this.lightbox = new PhotoSwipeLightbox({
      pswpModule: () => import("./vendor/photoswipe/photoswipe.esm.min.js"),
      showHideAnimationType: "fade", bgOpacity: 1, loop: false, preload: [1, 2],
      closeTitle: "Close (Esc)", arrowPrevTitle: "Previous (←)", arrowNextTitle: "Next (→)",
      errorMsg: "This photo cannot be shown.",
      paddingFn: () => this.padding(),
    });
    this.lightbox.addFilter("itemData", (data) => (data.result ? data : slide(data)));
    this.lightbox.on("uiRegister", () => this.registerInfo(actions));
    this.lightbox.on("change", () => {
      const pswp = this.lightbox.pswp;
      const result = pswp.currSlide.data.result;
      this.fill(result);
      onChange(result);
      if (pswp.currIndex >= pswp.getNumItems() - 3) onNearEnd();
    });
    this.lightbox.on("close", () => onClose());
    // PhotoSwipe takes no keys, nor a close, while it opens: a close asked meanwhile waits for
    // the end of the opening, and the mark tells scripts (and tests) when keys work.
    this.lightbox.on("openingAnimationEnd", () => {
      const pswp = this.lightbox.pswp;
      if (!this.wanted) return pswp.close();
      pswp.element.dataset.opened = "";
      return pswp.updateSize(true); // PhotoSwipe sizes no slide while it opens: the details may have come up
    });
    this.lightbox.init();
  }

  get isOpen() {
    return Boolean(this.lightbox.pswp);
  }

  open(items, index) {
    this.wanted = true;
    this.lightbox.loadAndOpen(index, items);
  }

  // More photos arrived (another page, an opened group) while the viewer is open.
  update(items) {
    const pswp = this.lightbox.pswp;
    const current = pswp?.currSlide?.data.result;
    const index = current ? items.findIndex((r) => r.id === current.id) : -1;
    // Only a list that keeps the open photo in its place: another page appended (not a shared
    // link's lone photo, nor a duplicates group).
    if (index < 0 || index !== pswp.currIndex) return;
    pswp.options.dataSource = items;
    pswp.refreshSlideContent(index + 1); // the next slide may have been a placeholder past the end
    pswp.dispatch("change");
  }

  close() {
    this.wanted = false;
    const pswp = this.lightbox.pswp;
    if (pswp?.opener.isOpen) pswp.close();
  }

  registerInfo(actions) {
    const ui = this.lightbox.pswp.ui;
    ui.registerElement({
      name: "info-button", title: "Details (i)", order: 15, isButton: true,
      html: { isCustomSVG: true, inner: INFO_ICON, outlineID: "pswp__icn-info" },
      onClick: () => this.toggleInfo(),
    });
    ui.registerElement({
      name: "info", order: 9, isButton: false, appendTo: "root", tagName: "aside",
      onInit: (element) => this.buildPanel(element, actions),
    });
    this.lightbox.pswp.on("keydown", ({ originalEvent }) => {
      if (originalEvent.key === "i") this.toggleInfo();
    });
  }

  toggleInfo() {
    this.showInfo = !this.showInfo;
    this.panel.hidden = !this.showInfo;
    this.lightbox.pswp.updateSize(true);
  }

  // The photo keeps clear of the open details panel: beside it on wide screens, above it on phones.
  padding() {
    const none = { top: 0, bottom: 0, left: 0, right: 0 };
    if (!this.showInfo || !this.panel) return none;
    return WIDE.matches ? { ...none, right: this.panel.offsetWidth + 24 } : { ...none, bottom: this.panel.offsetHeight };
  }

  buildPanel(panel, actions) {
    this.panel = panel;
    panel.setAttribute("aria-label", "Photo details");
    panel.hidden = !this.showInfo;
    const title = document.createElement("h2");
    title.dataset.field = "name";
    const list = document.createElement("dl");
    for (const [field, label] of [["folder", "Folder"], ["taken", "Taken"], ["camera", "Camera"],
      ["pixels", "Size"], ["file", "File"], ["score", "Score"]]) {
      const term = document.createElement("dt"), value = document.createElement("dd");
      term.textContent = label;
      value.dataset.field = field;
      list.append(term, value);
    }
    const buttons = document.createElement("div");
    buttons.className = "actions";
    const more = button("More like this", () => actions.moreLike(this.current));
    const folder = button("Show in folder", () => actions.showFolder(this.current));
    const download = document.createElement("a");
    download.className = "button";
    download.textContent = "Download original";
    download.dataset.field = "download";
    buttons.append(more, folder, download);
    panel.append(title, list, buttons);
  }

  fill(result) {
    this.current = result;
    if (!this.panel) return;
    const height = this.panel.offsetHeight;
    const set = (field, text) => {
      const element = this.panel.querySelector(`[data-field="${field}"]`);
      element.textContent = text;
      if (element.tagName === "DD") {
        element.hidden = text === null;
        element.previousElementSibling.hidden = text === null;
      }
    };
    const folder = result.folder ?? folderOf(result.path);
    set("name", nameOf(result));
    set("folder", folder || "(the photo folder itself)");
    set("taken", result.taken_at ? dateTaken(result.taken_at)
      : `${dateTaken(result.time)} (file date; no date in the photo)`);
    set("camera", result.camera || "unknown");
    set("pixels", result.width ? `${result.width} × ${result.height} pixels` : "unknown");
    set("file", [result.size ? fileSize(result.size) : null, result.file_type?.toUpperCase()]
      .filter(Boolean).join(" · ") || "unknown");
    set("score", typeof result.score === "number" ? `${result.score.toFixed(4)} (cosine similarity)` : null);
    const download = this.panel.querySelector('[data-field="download"]');
    download.href = result.download_url || `${result.image_url}?download=1`;
    download.setAttribute("download", nameOf(result));
    if (this.panel.offsetHeight !== height) this.lightbox.pswp.updateSize(true); // a phone's panel grew or shrank
  }
}

function button(text, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.addEventListener("click", onClick);
  return element;
}
