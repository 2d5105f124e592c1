// The duplicates view (?view=duplicates): groups of exact and near copies from
// /api/duplicates, largest first, one row each, the proposed keeper marked.
import { getWithStatus } from "./api.js";
import { baseName, fileSize, folderOf, plural } from "./format.js";

const GROUPS = 100;
const POLL_MS = 1000;

// A duplicate file as the viewer and the info panel take a result.
function asResult(file) {
  return {
    ...file, name: baseName(file.path), folder: folderOf(file.path), time: file.taken,
    image_url: `api/images/${file.id}`, preview_url: `api/previews/${file.id}`,
    download_url: `api/images/${file.id}?download=1`,
  };
}

export class DuplicatesView {
  constructor(root, { setStatus, onOpen }) {
    Object.assign(this, { root, setStatus, onOpen });
    root.addEventListener("click", (event) => {
      const link = event.target.closest("a.result");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      const group = this.groups[Number(link.closest(".dup-group").dataset.index)];
      this.onOpen(group, Number(link.dataset.id));
    });
  }

  async show(signal) {
    this.root.replaceChildren();
    this.groups = [];
    for (;;) {
      const { status, body } = await getWithStatus(`api/duplicates?limit=${GROUPS}`, signal);
      if (status !== 202) return this.render(body);
      this.setStatus(`Looking for duplicates among ${plural(body.photos, "photo")}…`);
      await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
      if (signal.aborted) return undefined;
    }
  }

  render(body) {
    if (!body.total_groups) {
      this.setStatus("No duplicates: every photo is one of a kind.", "empty");
      return;
    }
    const shown = body.groups.length < body.total_groups ? ` (the ${body.groups.length} largest shown)` : "";
    this.setStatus(`${plural(body.total_groups, "group")} of duplicates; ${plural(body.duplicates, "file")} `
      + `could go, keeping the marked one of each${shown}.`);
    body.groups.forEach((group, index) => {
      const files = group.files.map(asResult);
      this.groups.push(files);
      const section = document.createElement("section");
      section.className = "dup-group";
      section.dataset.index = index;
      const heading = document.createElement("h2");
      heading.className = "month";
      heading.textContent = group.kind === "exact" ? `${group.count} identical files`
        : `${group.count} near copies (similarity ${Math.floor(group.similarity * 1000) / 1000} or more)`;
      const row = document.createElement("div");
      row.className = "dup-row";
      row.append(...files.map((file) => this.tile(file, file.path === group.keep)));
      section.append(heading, row);
      this.root.append(section);
    });
  }

  tile(file, keep) {
    const figure = document.createElement("figure");
    figure.className = keep ? "dup keep" : "dup";
    figure.style.setProperty("--aspect", `${file.width || 4} / ${file.height || 3}`);
    const link = document.createElement("a");
    link.className = "result";
    link.href = `?photo=${file.id}`;
    link.dataset.id = file.id;
    link.setAttribute("aria-label", file.name);
    const image = document.createElement("img");
    image.src = file.thumbnail_url;
    image.alt = "";
    image.loading = "lazy";
    link.append(image);
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = file.path;
    const details = document.createElement("span");
    details.textContent = [file.width ? `${file.width} × ${file.height}` : "", fileSize(file.size)]
      .filter(Boolean).join(" · ");
    caption.append(name, details);
    if (keep) {
      const label = document.createElement("span");
      label.className = "keep-label";
      label.textContent = "Keep";
      link.append(label);
    }
    figure.append(link, caption);
    return figure;
  }
}
