// The photo grid: justified rows that keep each photo's aspect ratio (Flickr's
// justified-layout computes them), month sections when browsing, a strong and a
// folded weak section when searching, duplicate groups that open in place.
// Every tile gets its box before its image loads, so nothing jumps.
import { matchPercent, monthKey, monthName, plural } from "./format.js";

// justified-layout ships as a browserify bundle: its classic <script> defines a global require().
const justifiedLayout = window.require("justified-layout");
const PHONE = window.matchMedia("(max-width: 599px)");

export class Grid {
  constructor(root, { hrefFor, onOpen, onChange }) {
    Object.assign(this, { root, hrefFor, onOpen, onChange });
    this.tiles = new Map(); // photo id -> tile element, kept while the listing lasts
    this.reset("browse");
    root.addEventListener("click", (event) => this.click(event));
    new ResizeObserver(() => this.relayout()).observe(root);
  }

  // mode "browse": sections by month; "search": strong matches, then the weak ones folded.
  reset(mode, { weakBelow = -Infinity, weakCount = 0 } = {}) {
    Object.assign(this, { mode, weakBelow, best: null, width: 0 });
    this.sections = [];
    this.expanded = new Set();
    this.tiles.clear();
    this.root.replaceChildren();
    if (mode === "search") {
      this.section("strong", null);
      const weak = this.section("weak", null);
      weak.folded = true;
      this.setWeakCount(weakCount);
    }
  }

  section(key, title) {
    let section = this.sections.find((s) => s.key === key);
    if (section) return section;
    const el = document.createElement("section");
    el.className = `group ${key}`;
    const heading = document.createElement("h2");
    heading.className = "month";
    heading.textContent = title || "";
    heading.hidden = !title;
    const box = document.createElement("div");
    box.className = "rows";
    el.append(heading, box);
    this.root.append(el);
    section = { key, el, box, heading, items: [], folded: false, dirty: true };
    this.sections.push(section);
    return section;
  }

  setWeakCount(count) {
    const weak = this.sections.find((s) => s.key === "weak");
    if (!weak || !weak.folded) return;
    let button = weak.el.querySelector("button.fold");
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.className = "fold";
      weak.heading.before(button);
    }
    button.textContent = `Show ${plural(count, "weaker match", "weaker matches")}`;
    button.hidden = count === 0;
    weak.box.hidden = true;
  }

  get folded() {
    return this.sections.some((s) => s.folded);
  }

  unfold() {
    for (const section of this.sections.filter((s) => s.folded)) {
      section.folded = false;
      section.dirty = true;
      section.el.querySelector("button.fold")?.remove();
      section.box.hidden = false;
      section.heading.textContent = "Weaker matches";
      section.heading.hidden = false;
    }
    this.relayout();
    this.onChange();
  }

  add(results) {
    for (const result of results) {
      let section;
      if (this.mode === "browse") section = this.section(monthKey(result.time), monthName(result.time));
      else section = this.section(result.score >= this.weakBelow ? "strong" : "weak");
      if (this.mode === "search" && this.best === null) this.best = result.score;
      section.items.push(result);
      section.dirty = true;
    }
    this.layout();
  }

  // The photos on show, in order: what the viewer steps through.
  visibleItems() {
    return this.sections.filter((s) => !s.folded).flatMap((s) => this.shown(s));
  }

  shown(section) {
    return section.items.flatMap((r) => (this.expanded.has(r.id) ? [r, ...r.duplicates] : [r]));
  }

  relayout() {
    this.sections.forEach((s) => { s.dirty = true; });
    this.layout();
  }

  layout() {
    const width = this.root.clientWidth;
    if (width === 0) return;
    const phone = PHONE.matches;
    for (const section of this.sections) {
      if (!section.dirty || section.folded) continue;
      section.dirty = false;
      const items = this.shown(section);
      const geometry = justifiedLayout(items.map((r) => ({ width: r.width || 4, height: r.height || 3 })), {
        containerWidth: width, containerPadding: 0, boxSpacing: phone ? 3 : 6,
        targetRowHeight: phone ? 88 : 170, targetRowHeightTolerance: 0.3,
      });
      section.box.style.height = `${geometry.containerHeight}px`;
      section.box.replaceChildren(...items.map((result, i) => {
        const tile = this.tile(result);
        const b = geometry.boxes[i];
        Object.assign(tile.style, { left: `${b.left}px`, top: `${b.top}px`, width: `${b.width}px`,
                                    height: `${b.height}px` });
        return tile;
      }));
    }
  }

  tile(result) {
    let tile = this.tiles.get(result.id);
    if (tile) return tile;
    tile = document.createElement("div");
    tile.className = "tile";
    const link = document.createElement("a");
    link.className = "result";
    link.href = this.hrefFor(result.id);
    link.dataset.id = result.id;
    link.title = result.name || result.path;
    link.setAttribute("aria-label", result.name || result.path);
    const image = document.createElement("img");
    image.alt = "";
    image.loading = "lazy";
    image.decoding = "async";
    if (result.thumbnail_url_2x) image.srcset = `${result.thumbnail_url} 1x, ${result.thumbnail_url_2x} 2x`;
    image.src = result.thumbnail_url;
    link.append(image);
    tile.append(link);
    if (this.mode === "search" && typeof result.score === "number") {
      const percent = matchPercent(result.score, this.best);
      const match = document.createElement("span");
      match.className = "match";
      match.title = `${percent}% of the best match`;
      const bar = document.createElement("span");
      bar.style.width = `${percent}%`;
      match.append(bar);
      tile.append(match);
    }
    const copies = result.duplicates?.length || 0;
    if (copies) {
      const badge = document.createElement("button");
      badge.type = "button";
      badge.className = "badge";
      badge.dataset.id = result.id;
      badge.textContent = `${copies + 1}`;
      tile.append(badge);
      this.setBadge(badge, false);
      result.duplicates.forEach((member) => { member.member = true; });
    }
    if (result.member) tile.classList.add("member");
    this.tiles.set(result.id, tile);
    return tile;
  }

  setBadge(badge, open) {
    const count = Number(badge.textContent);
    badge.setAttribute("aria-expanded", String(open));
    badge.title = open ? "Hide the copies" : `${count} copies of this photo: show them all`;
    badge.setAttribute("aria-label", badge.title);
  }

  click(event) {
    const fold = event.target.closest("button.fold");
    if (fold) return this.unfold();
    const badge = event.target.closest("button.badge");
    if (badge) {
      const id = Number(badge.dataset.id);
      const open = !this.expanded.has(id);
      if (open) this.expanded.add(id);
      else this.expanded.delete(id);
      this.setBadge(badge, open);
      this.sections.forEach((s) => { if (s.items.some((r) => r.id === id)) s.dirty = true; });
      this.layout();
      return this.onChange();
    }
    const link = event.target.closest("a.result");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return undefined;
    event.preventDefault();
    return this.onOpen(Number(link.dataset.id));
  }
}
