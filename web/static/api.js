// Talking to /api/search: the query kinds the page knows and how each is sent.

export const PAGE_SIZE = 24;

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

// query: {kind: "text", text} | {kind: "id", id} | {kind: "upload", file}
export async function search(query, offset, signal) {
  const options = { k: PAGE_SIZE, offset };
  let response;
  if (query.kind === "text") {
    const terms = parseText(query.text);
    if (terms.length === 1 && terms[0].weight === 1) {
      const params = new URLSearchParams({ q: terms[0].text, k: options.k, offset });
      response = await fetch(`api/search?${params}`, { signal });
    } else {
      response = await postJson({ queries: terms, ...options }, signal);
    }
  } else if (query.kind === "id") {
    response = await postJson({ id: query.id, ...options }, signal);
  } else {
    const form = new FormData();
    form.append("image", query.file);
    form.append("k", options.k);
    form.append("offset", offset);
    response = await fetch("api/search", { method: "POST", body: form, signal });
  }
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

function postJson(body, signal) {
  return fetch("api/search", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
}

export function setToken(token) {
  // A cookie, not a header: <img> requests for thumbnails must carry it too.
  document.cookie = `photosearch_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
}
