// How the page writes dates, sizes and scores for people.

const MONTH = new Intl.DateTimeFormat("en", { month: "long", year: "numeric", timeZone: "UTC" });
const DAY = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" });

// The API's times are local capture times without a zone ("2024-06-03T18:20:00"):
// read and written as UTC, so no browser time zone shifts them.
function parse(time) {
  const date = time ? new Date(`${time.slice(0, 19)}Z`) : null;
  return date && !Number.isNaN(date.getTime()) ? date : null;
}

export function monthKey(time) {
  return time ? time.slice(0, 7) : "";
}

export function monthName(time) {
  const date = parse(time);
  return date ? MONTH.format(date) : "Date unknown";
}

export function dateTaken(time) {
  const date = parse(time);
  return date ? DAY.format(date) : "unknown";
}

export function fileSize(bytes) {
  if (!Number.isFinite(bytes)) return "unknown";
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes, unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

// A score as a person reads it: its share of the best score on the page, 0-100.
export function matchPercent(score, best) {
  if (!Number.isFinite(score) || !(best > 0)) return 0;
  return Math.round(100 * Math.min(1, Math.max(0, score) / best));
}

export function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString("en")} ${count === 1 ? one : many}`;
}

export function baseName(path) {
  return path.slice(path.lastIndexOf("/") + 1);
}

export function folderOf(path) {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}
