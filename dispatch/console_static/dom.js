// Small helpers shared by every page: building HTML and SVG, calling our own API.

const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export const session = { csrf: null, agencyId: null, name: null, tileUrl: null };

// Every call goes to our own origin; the cookie rides along, the CSRF token is added to
// anything that changes data.
export async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401) {
    window.dispatchEvent(new CustomEvent("signed-out"));
  }
  if (!resp.ok) {
    let problem = null;
    try {
      problem = await resp.json();
    } catch (_) {
      problem = null;
    }
    throw new ApiError(resp.status, problem);
  }
  if (raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

export function agencyPath(rest) {
  return `/v1/agencies/${session.agencyId}${rest}`;
}

export function fmtSeconds(value) {
  if (value === null || value === undefined) return "–";
  const sign = value < 0 ? "−" : "";
  const total = Math.round(Math.abs(value));
  const m = Math.floor(total / 60);
  const sec = String(total % 60).padStart(2, "0");
  return `${sign}${m}:${sec}`;
}

export function fmtTime(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleString();
}

export function fmtPct(value) {
  if (value === null || value === undefined) return "–";
  return `${(value * 100).toFixed(1)} %`;
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}
