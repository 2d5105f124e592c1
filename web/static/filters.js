// The filters beside the search box: date range, folder, camera and file type,
// each one a field of the URL; the choices come from /api/facets.
import { getJson } from "./api.js";
import { FILTER_NAMES } from "./route.js";
import { plural } from "./format.js";

const WIDE = window.matchMedia("(min-width: 700px)");

export class FilterBar {
  constructor(root, onChange) {
    this.root = root;
    this.fields = Object.fromEntries(FILTER_NAMES.map((name) => [name, root.querySelector(`[name="${name}"]`)]));
    this.summary = root.querySelector("summary");
    root.open = WIDE.matches;
    root.addEventListener("change", () => onChange(this.value()));
    root.querySelector("#clear-filters").addEventListener("click", () => onChange({}));
  }

  value() {
    const filters = {};
    for (const [name, field] of Object.entries(this.fields)) {
      if (field.value) filters[name] = field.value;
    }
    return filters;
  }

  show(filters) {
    for (const [name, field] of Object.entries(this.fields)) {
      const value = filters[name] || "";
      if (field.tagName === "SELECT" && value && ![...field.options].some((o) => o.value === value)) {
        field.append(new Option(value, value)); // a shared link's value, before (or beyond) the facets
      }
      field.value = value;
    }
    const active = Object.keys(filters).length;
    this.summary.textContent = active ? `Filters (${active})` : "Filters";
    this.root.classList.toggle("active", active > 0);
    this.root.querySelector("#clear-filters").hidden = active === 0;
  }

  async loadFacets() {
    const facets = await getJson("api/facets");
    const current = this.value();
    fill(this.fields.folder, "All folders", facets.folders.map((f) => [f.path, `${f.path} (${f.count})`]));
    fill(this.fields.camera, "All cameras", facets.cameras.map((c) => [c.name, `${c.name} (${c.count})`]));
    fill(this.fields.type, "All file types",
      facets.file_types.map((t) => [t.name, `${t.name.toUpperCase()} (${plural(t.count, "photo")})`]));
    const range = facets.time_range || {};
    for (const name of ["after", "before"]) {
      if (range.first) this.fields[name].min = range.first.slice(0, 10);
      if (range.last) this.fields[name].max = range.last.slice(0, 10);
    }
    this.show(current);
  }
}

function fill(select, allLabel, choices) {
  select.replaceChildren(new Option(allLabel, ""), ...choices.map(([value, label]) => new Option(label, value)));
}
