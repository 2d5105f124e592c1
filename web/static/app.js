// The page: the library newest first, or the results of a query, in one justified grid;
// a viewer over it; filters; the duplicates view. What is shown lives in the URL (route.js).
import { ApiError, browse, getJson, search, setToken } from "./api.js";
import { DuplicatesView } from "./duplicates.js";
import { FilterBar } from "./filters.js";
import { plural } from "./format.js";
import { Grid } from "./grid.js";
import { isImage, takeImages } from "./images_in.js";
import { readRoute, routeUrl } from "./route.js";
import { nameOf, Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const form = $("search-form"), input = $("q"), statusLine = $("status");
const uploads = new Map(); // upload key -> File; an upload cannot live in a URL
const names = new Map(); // photo id -> file name, for "Photos like IMG_1004.jpg"
let route = readRoute(uploads);
const state = { listing: null, controller: null, loading: false, more: false, offset: 0, cursor: null,
  pushedPhoto: false, pendingPhoto: null };

const grid = new Grid($("results"), {
  hrefFor: (id) => routeUrl({ ...route, photo: id }),
  onOpen: (id) => openViewer(grid.visibleItems(), id),
  onChange: () => { viewer.update(grid.visibleItems()); loadIfNeeded(); },
});
const viewer = new Viewer({
  actions: {
    moreLike: (result) => leaveViewer({ query: { kind: "id", id: result.id }, filters: route.filters }, result),
    showFolder: (result) => leaveViewer({ query: null, filters: { folder: result.folder ?? "" } }, result),
  },
  onChange: (result) => {
    if (route.photo === result.id) return;
    route = { ...route, photo: result.id };
    history.replaceState(null, "", routeUrl(route));
  },
  onClose: () => {
    if (route.photo === null) return; // closed by the back button or by leaving for another listing
    route = { ...route, photo: null };
    if (state.pushedPhoto) history.back();
    else history.replaceState(null, "", routeUrl(route));
    state.pushedPhoto = false;
  },
  onNearEnd: () => loadIfNeeded(true),
});
const duplicates = new DuplicatesView($("duplicates"), { setStatus, onOpen: openViewer });
const filterBar = new FilterBar($("filters"), (filters) => go({ query: route.query, filters }));

function go(next, { replace = false } = {}) {
  const target = { query: null, filters: {}, view: null, photo: null, ...next };
  const url = routeUrl(target), same = url === routeUrl(route);
  history[replace || same ? "replaceState" : "pushState"](null, "", url);
  apply(target);
}

function apply(next) {
  route = next;
  if (state.listing !== routeUrl({ ...next, photo: null })) startListing();
  if (next.photo === null && viewer.isOpen) viewer.close();
  else if (next.photo !== null && !viewer.isOpen) {
    state.pendingPhoto = next.photo;
    if (!state.loading) openPending();
  }
}

function leaveViewer(next, result) {
  names.set(result.id, nameOf(result));
  const replace = state.pushedPhoto; // the viewer's history entry becomes the new listing's
  state.pushedPhoto = false;
  route = { ...route, photo: null };
  viewer.close();
  go(next, { replace });
}

function openViewer(items, id) {
  route = { ...route, photo: id };
  history.pushState(null, "", routeUrl(route));
  state.pushedPhoto = true;
  viewer.open(items, items.findIndex((r) => r.id === id));
}

async function openPending() {
  const id = state.pendingPhoto;
  state.pendingPhoto = null;
  if (id === null || viewer.isOpen) return;
  const items = grid.visibleItems(), index = items.findIndex((r) => r.id === id);
  if (index >= 0) return viewer.open(items, index);
  try {
    viewer.open([await getJson(`api/photos/${id}`)], 0); // a shared link to a photo not on the first page
  } catch (error) {
    route = { ...route, photo: null };
    history.replaceState(null, "", routeUrl(route));
    showError(error);
  }
  return undefined;
}

function setStatus(text, kind = "") {
  statusLine.textContent = text;
  statusLine.className = kind;
}

function showError(error) {
  if (error instanceof ApiError && error.status === 401) $("token-form").hidden = false;
  setStatus(error instanceof ApiError ? error.message : `The server cannot be reached: ${error.message}`, "error");
}

async function showPreview(query) {
  const preview = $("query-preview"), image = $("preview-image"), text = $("preview-text");
  const hasFile = query?.kind === "upload" && query.file;
  preview.hidden = !(query?.kind === "id" || hasFile);
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.hidden = false;
  image.removeAttribute("src");
  if (preview.hidden) return;
  if (hasFile) {
    image.src = URL.createObjectURL(query.file);
    text.textContent = `Photos like ${query.file.name || "your image"}`;
    return;
  }
  image.src = `api/thumbnails/${query.id}`;
  text.textContent = `Photos like ${names.get(query.id) || "this photo"}`;
  if (!names.has(query.id)) {
    try {
      const photo = await getJson(`api/photos/${query.id}`);
      names.set(query.id, nameOf(photo));
      if (route.query === query) text.textContent = `Photos like ${nameOf(photo)}`;
    } catch {
      // the search itself reports an unknown id
    }
  }
}

function startListing() {
  if (state.controller) state.controller.abort();
  state.listing = routeUrl({ ...route, photo: null });
  Object.assign(state, { controller: new AbortController(), loading: false, more: false, offset: 0, cursor: null,
    weakReached: false });
  const query = route.query, duplicatesView = route.view === "duplicates";
  input.value = query?.kind === "text" ? query.text : "";
  filterBar.show(route.filters);
  $("filters").hidden = duplicatesView;
  $("results").hidden = duplicatesView;
  $("duplicates").hidden = !duplicatesView;
  $("duplicates-link").setAttribute("aria-current", duplicatesView ? "page" : "false");
  grid.reset(query ? "search" : "browse");
  showPreview(duplicatesView ? null : query);
  if (duplicatesView) {
    duplicates.show(state.controller.signal).catch((error) => error.name === "AbortError" || showError(error))
      .finally(() => openPending());
  } else if (query?.kind === "upload" && !query.file) {
    setStatus("An uploaded image is not kept when the page reloads: pick it again.", "error");
  } else {
    loadMore();
  }
}

// Load the next page when the end of the grid is near, unless the weak matches are still folded.
function loadIfNeeded(force = false) {
  if (!state.more || state.loading || route.view) return;
  const nearEnd = force || $("sentinel").getBoundingClientRect().top < window.innerHeight + 600;
  if (nearEnd && !(grid.folded && state.weakReached)) loadMore();
}

async function loadMore() {
  if (state.loading) return;
  const { controller } = state, query = route.query, first = state.offset === 0 && state.cursor === null;
  state.loading = true;
  $("results").setAttribute("aria-busy", "true");
  if (first) setStatus(query ? "Searching…" : "Loading photos…");
  try {
    if (query) {
      const page = await search(query, state.offset, route.filters, controller.signal);
      if (first) grid.reset("search", { weakBelow: page.weak_below, weakCount: page.total - page.strong_total });
      grid.add(page.results);
      // Pages count photos; a tile stands for itself and the copies collapsed into it.
      state.offset += page.results.reduce((n, r) => n + 1 + (r.duplicates?.length || 0), 0);
      state.more = page.results.length > 0 && state.offset < page.total;
      state.weakReached = page.results.some((r) => r.score < page.weak_below);
      setStatus(searchStatus(query, page));
    } else {
      const page = await browse(state.cursor, route.filters, controller.signal);
      grid.add(page.results);
      state.cursor = page.next_cursor;
      state.more = page.next_cursor !== null;
      const filtered = Object.keys(route.filters).length > 0;
      setStatus(page.total === 0 ? (filtered ? "No photos match these filters." : "This library has no photos yet.")
        : `${plural(page.total, "photo")}${filtered ? " match the filters" : ""}, newest first`,
      page.total === 0 ? "empty" : "");
    }
    viewer.update(grid.visibleItems());
  } catch (error) {
    if (error.name === "AbortError") return;
    if (first) $("query-preview").hidden = true;
    showError(error);
  } finally {
    if (state.controller === controller) {
      state.loading = false;
      $("results").removeAttribute("aria-busy");
      if (state.pendingPhoto !== null) openPending();
      requestAnimationFrame(() => loadIfNeeded());
    }
  }
}

function searchStatus(query, page) {
  const strong = page.strong_total, weak = page.total - page.strong_total;
  const like = query.kind === "id" && names.has(query.id) ? ` for ${names.get(query.id)}` : "";
  if (page.total === 0) return "No photos match this query and these filters.";
  const head = strong ? `${plural(strong, "good match", "good matches")}${like}` : `No close matches${like}`;
  return weak && strong ? `${head} (and ${weak.toLocaleString("en")} weaker)` : head;
}

function searchFile(file) {
  if (!isImage(file)) {
    setStatus("That is not an image file: pick a JPEG, PNG, WebP, HEIC, AVIF or similar photo.", "error");
    return;
  }
  const key = `${Date.now().toString(36)}${uploads.size}`;
  uploads.set(key, file);
  go({ query: { kind: "upload", key, file }, filters: route.filters });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text) go({ query: { kind: "text", text }, filters: route.filters });
  else if (route.query) go({ query: null, filters: route.filters });
});
takeImages($("file"), $("drop-overlay"), searchFile);
$("preview-image").addEventListener("error", (event) => { event.target.hidden = true; }); // HEIC: no browser shows it
$("home").addEventListener("click", (event) => { event.preventDefault(); go({}); });
$("duplicates-link").addEventListener("click", (event) => { event.preventDefault(); go({ view: "duplicates" }); });
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting)) loadIfNeeded();
}, { rootMargin: "600px" }).observe($("sentinel"));

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing && !viewer.isOpen) {
    event.preventDefault();
    input.focus();
    input.select();
  }
});
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("token").value);
  $("token-form").hidden = true;
  state.listing = null;
  apply(readRoute(uploads));
  filterBar.loadFacets().catch(() => {});
});
window.addEventListener("popstate", () => {
  const next = readRoute(uploads);
  if (next.photo === null) state.pushedPhoto = false;
  apply(next);
});
apply(route);
filterBar.loadFacets().catch(() => {}); // without facets the filters still take dates and typed values
