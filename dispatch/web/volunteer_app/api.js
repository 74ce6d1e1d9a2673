// Calls to the service's /v1 API, relative to where the app is served, so a proxy's
// path prefix (/prefix/app/ -> /prefix/v1/) needs no configuration.

const API = new URL("../v1/", document.baseURI);
const STORE = "dispatch.session";

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), API).href;
}

export function session() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || "null");
  } catch {
    return null;
  }
}

export function saveSession(tokens) {
  localStorage.setItem(STORE, JSON.stringify(tokens));
}

export function forgetSession() {
  localStorage.removeItem(STORE);
}

let refreshing = null;

// One refresh at a time: a refresh token works once, and a second use revokes the session.
function refresh() {
  if (!refreshing) {
    const current = session();
    refreshing = (async () => {
      if (!current) throw new ApiError(401, { type: "signed-out" });
      const resp = await fetch(apiUrl("volunteers/refresh"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: current.refresh_token }),
      });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        forgetSession();
        throw new ApiError(resp.status, body);
      }
      saveSession(body);
      return body;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function send(method, path, body, headers, auth) {
  const init = { method, headers: { ...headers } };
  if (auth) {
    const current = session();
    if (current) init.headers.Authorization = `Bearer ${current.access_token}`;
  }
  if (body !== undefined) {
    if (body instanceof Blob) {
      init.body = body;
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  return fetch(apiUrl(path), init);
}

// The live stream: a long GET read as it arrives (EventSource cannot send the token).
export async function openStream(signal) {
  const open = () => {
    const current = session();
    const headers = { Accept: "text/event-stream" };
    if (current) headers.Authorization = `Bearer ${current.access_token}`;
    return fetch(apiUrl("me/stream"), { headers, signal, cache: "no-store" });
  };
  let resp = await open();
  if (resp.status === 401 && session()) {
    const problem = await resp.json().catch(() => ({}));
    if (String(problem.type || "").endsWith("token-expired")) {
      await refresh();
      resp = await open();
    }
  }
  if (!resp.ok || !resp.body) throw new ApiError(resp.status, null);
  return resp;
}

export async function call(method, path, body, { auth = true, headers = {} } = {}) {
  let resp = await send(method, path, body, headers, auth);
  if (resp.status === 401 && auth && session()) {
    const problem = await resp.clone().json().catch(() => ({}));
    if (String(problem.type || "").endsWith("token-expired")) {
      await refresh();
      resp = await send(method, path, body, headers, auth);
    }
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}
