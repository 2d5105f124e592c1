// Talking to the JSON API: the query kinds the page knows, browsing, and the filters every one takes.

const SEARCH_PAGE = 48;
const BROWSE_PAGE = 100;

// The page's filter names (short, in its URL) and the API's.
export const FILTER_PARAMS = {
  after: "taken_after", before: "taken_before", folder: "path_prefix", camera: "camera", type: "file_type",
};

// rclip's syntax: "beach + sunset - 2:people" is a weighted sum of text terms.
export function parseText(text) {
  const parts = text.trim().split(/\s+([+-])\s+/);
  const terms = [];
  for (let i = 0; i < parts.length; i += 2) {
    const sign = i === 0 || parts[i - 1] === "+" ? 1 : -1;
    const match = parts[i].match(/^(\d+(?:\.\d+)?):(.+)$/);
    const weight = match ? Number(match[1]) : 1;
    const words = (match ? match[2] : parts[i]).trim();
    if (words) terms.push({ text: words, weight: sign * weight });
  }
  return terms;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function apiFilters(filters) {
  const out = {};
  for (const [name, param] of Object.entries(FILTER_PARAMS)) {
    if (filters[name]) out[param] = filters[name];
  }
  return out;
}

// query: {kind: "text", text} | {kind: "id", id} | {kind: "upload", file}
export async function search(query, offset, filters, signal) {
  const options = { k: SEARCH_PAGE, offset, collapse: true, ...apiFilters(filters) };
  if (query.kind === "text") {
    const terms = parseText(query.text);
    if (terms.length === 1 && terms[0].weight === 1) {
      return getJson(`api/search?${new URLSearchParams({ q: terms[0].text, ...options })}`, signal);
    }
    return postJson({ queries: terms, ...options }, signal);
  }
  if (query.kind === "id") return postJson({ id: query.id, ...options }, signal);
  const form = new FormData();
  form.append("image", query.file);
  for (const [name, value] of Object.entries(options)) form.append(name, value);
  return answer(await fetch("api/search", { method: "POST", body: form, signal }));
}

export function browse(cursor, filters, signal) {
  const params = new URLSearchParams({ limit: BROWSE_PAGE, collapse: true, ...apiFilters(filters) });
  if (cursor) params.set("cursor", cursor);
  return getJson(`api/browse?${params}`, signal);
}

export async function getJson(path, signal) {
  return answer(await fetch(path, { signal }));
}

// The whole answer of a call that may say "still computing" (202): {status, body}.
export async function getWithStatus(path, signal) {
  const response = await fetch(path, { signal });
  return { status: response.status, body: await answer(response) };
}

async function postJson(body, signal) {
  return answer(await fetch("api/search", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  }));
}

async function answer(response) {
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(response.status, "bad_response", `The server answered ${response.status} without JSON.`);
  }
  if (!response.ok) {
    const error = body.error || {};
    throw new ApiError(response.status, error.code || "error", error.message || `HTTP ${response.status}`);
  }
  return body;
}

export function setToken(token) {
  // A cookie, not a header: <img> requests for thumbnails must carry it too.
  document.cookie = `photosearch_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
}
