// What the page shows lives in its URL: the query (?q=, ?id=, ?upload=), the filters,
// the open photo (?photo=) and the view (?view=duplicates), so back, forward,
// reload and shared links all work.
import { FILTER_PARAMS } from "./api.js";

export const FILTER_NAMES = Object.keys(FILTER_PARAMS);
const ID = /^\d+$/;

export function readRoute(uploads) {
  const params = new URLSearchParams(location.search);
  let query = null;
  if (params.get("q")) query = { kind: "text", text: params.get("q") };
  else if (ID.test(params.get("id") || "")) query = { kind: "id", id: Number(params.get("id")) };
  else if (params.get("upload")) {
    const key = params.get("upload");
    query = { kind: "upload", key, file: uploads.get(key) };
  }
  const filters = {};
  for (const name of FILTER_NAMES) {
    if (params.get(name)) filters[name] = params.get(name);
  }
  return {
    query,
    filters,
    view: params.get("view") === "duplicates" ? "duplicates" : null,
    photo: ID.test(params.get("photo") || "") ? Number(params.get("photo")) : null,
  };
}

export function routeUrl(route) {
  const params = new URLSearchParams();
  const query = route.query;
  if (route.view) params.set("view", route.view);
  else if (query && query.kind === "text") params.set("q", query.text);
  else if (query && query.kind === "id") params.set("id", query.id);
  else if (query) params.set("upload", query.key);
  if (!route.view) {
    for (const name of FILTER_NAMES) {
      if (route.filters[name]) params.set(name, route.filters[name]);
    }
  }
  if (route.photo !== null && route.photo !== undefined) params.set("photo", route.photo);
  const text = params.toString();
  return text ? `?${text}` : location.pathname;
}
