// The search page: the query lives in the URL (?q=, ?id=, ?upload=), so back,
// forward and shared links work; results load a page at a time as you scroll.
import { ApiError, search, setToken } from "./api.js";

const $ = (id) => document.getElementById(id);
const form = $("search-form"), input = $("q"), fileInput = $("file"), statusLine = $("status");
const grid = $("results"), more = $("more"), overlay = $("drop-overlay");
const uploads = new Map(); // upload key -> File; an upload cannot live in a URL
const state = { query: null, offset: 0, total: 0, loading: false, controller: null };

function queryFromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.get("q")) return { kind: "text", text: params.get("q") };
  if (/^\d+$/.test(params.get("id") || "")) return { kind: "id", id: Number(params.get("id")) };
  if (params.get("upload")) return { kind: "upload", key: params.get("upload"), file: uploads.get(params.get("upload")) };
  return null;
}

function urlOf(query) {
  if (query.kind === "text") return `?q=${encodeURIComponent(query.text)}`;
  if (query.kind === "id") return `?id=${query.id}`;
  return `?upload=${query.key}`;
}

function navigate(query) {
  history.pushState(null, "", urlOf(query));
  start(query);
}

function setStatus(text, kind = "") {
  statusLine.textContent = text;
  statusLine.className = kind;
}

function showPreview(query) {
  const preview = $("query-preview"), image = $("preview-image");
  preview.hidden = query === null || query.kind === "text";
  if (preview.hidden) return;
  if (query.kind === "upload" && query.file) {
    if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
    image.src = URL.createObjectURL(query.file);
    $("preview-text").textContent = `Photos like ${query.file.name || "your image"}`;
  } else if (query.kind === "id") {
    image.src = `api/thumbnails/${query.id}`;
    $("preview-text").textContent = `More like photo ${query.id}`;
  }
}

function start(query) {
  if (state.controller) state.controller.abort();
  Object.assign(state, { query, offset: 0, total: 0, loading: false, controller: null });
  grid.replaceChildren();
  more.hidden = true;
  input.value = query && query.kind === "text" ? query.text : "";
  showPreview(query);
  if (query === null) {
    setStatus("Type a description, or drop, paste or pick an image.");
  } else if (query.kind === "upload" && !query.file) {
    setStatus("An uploaded image is not kept when the page reloads: pick it again.", "error");
  } else {
    loadMore();
  }
}

async function loadMore() {
  if (state.loading || state.query === null) return;
  const query = state.query, controller = new AbortController();
  Object.assign(state, { loading: true, controller });
  grid.setAttribute("aria-busy", "true");
  setStatus(state.offset === 0 ? "Searching…" : "Loading more…");
  try {
    const page = await search(query, state.offset, controller.signal);
    if (query !== state.query) return; // a newer search has started
    page.results.forEach((result) => grid.append(renderResult(result)));
    state.offset += page.results.length;
    state.total = page.total;
    const hasMore = page.results.length > 0 && state.offset < page.total;
    more.hidden = !hasMore;
    if (hasMore) {
      // The observer reports changes only: if a short page left the sentinel in
      // view, observing afresh reports it again and the next page loads.
      observer.unobserve($("sentinel"));
      observer.observe($("sentinel"));
    }
    if (state.offset === 0) setStatus("No photos match this query.", "empty");
    else setStatus(`${state.offset} of ${page.total} photos, best first (${Math.round(page.took_ms)} ms)`);
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error instanceof ApiError && error.status === 401) $("token-form").hidden = false;
    if (state.offset === 0) $("query-preview").hidden = true;
    setStatus(error instanceof ApiError ? error.message : `The server cannot be reached: ${error.message}`, "error");
  } finally {
    if (state.controller === controller) {
      Object.assign(state, { loading: false, controller: null });
      grid.removeAttribute("aria-busy");
    }
  }
}

function renderResult(result) {
  const item = document.createElement("li");
  const link = document.createElement("a");
  link.className = "result";
  link.href = `?id=${result.id}`;
  link.dataset.id = result.id;
  link.title = `More like ${result.path}`;
  link.setAttribute("aria-label", `More like ${result.path} (score ${result.score.toFixed(3)})`);
  const image = document.createElement("img");
  image.src = result.thumbnail_url;
  image.alt = ""; // the link's label and caption already name the photo
  image.loading = "lazy";
  const caption = document.createElement("span");
  caption.className = "caption";
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = result.score.toFixed(3);
  const path = document.createElement("span");
  path.className = "path";
  path.textContent = result.path;
  caption.append(score, " ", path);
  link.append(image, caption);
  const original = document.createElement("a");
  original.className = "original";
  original.href = result.image_url;
  original.target = "_blank";
  original.rel = "noopener";
  original.textContent = "Open original";
  item.append(link, original);
  return item;
}

function searchFile(file) {
  if (!file || !file.type.startsWith("image/")) {
    setStatus("That is not an image file.", "error");
    return;
  }
  const key = `${Date.now().toString(36)}${uploads.size}`;
  uploads.set(key, file);
  navigate({ kind: "upload", key, file });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text) navigate({ kind: "text", text });
});
fileInput.addEventListener("change", () => {
  searchFile(fileInput.files[0]);
  fileInput.value = "";
});
grid.addEventListener("click", (event) => {
  const link = event.target.closest("a.result");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate({ kind: "id", id: Number(link.dataset.id) });
  window.scrollTo(0, 0);
});
more.addEventListener("click", loadMore);
const observer = new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting) && !more.hidden) loadMore();
}, { rootMargin: "200px" });
observer.observe($("sentinel"));

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    input.focus();
    input.select();
  }
});
document.addEventListener("paste", (event) => {
  const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
  if (file) {
    event.preventDefault();
    searchFile(file);
  }
});
document.addEventListener("dragover", (event) => {
  if (![...event.dataTransfer.types].includes("Files")) return;
  event.preventDefault();
  overlay.hidden = false;
});
overlay.addEventListener("dragleave", () => { overlay.hidden = true; });
document.addEventListener("drop", (event) => {
  event.preventDefault();
  overlay.hidden = true;
  searchFile(event.dataTransfer.files[0]);
});
$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("token").value);
  $("token-form").hidden = true;
  start(queryFromUrl());
});
window.addEventListener("popstate", () => start(queryFromUrl()));
start(queryFromUrl());
