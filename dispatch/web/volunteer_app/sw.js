// The service worker: keeps the app's shell for slow or absent networks, and turns a
// Web Push message into a notification that opens the alert screen.

const VERSION = "app-v1";
const SHELL = [
  "./",
  "index.html",
  "app.css",
  "app.js",
  "api.js",
  "geo.js",
  "i18n.js",
  "live.js",
  "push.js",
  "ring.js",
  "manifest.webmanifest",
  "icon.svg",
  "icon-192.png",
  "icon-512.png",
  "i18n/en.json",
  "i18n/nl.json",
];
const SHELL_URLS = new Set(SHELL.map((p) => new URL(p, self.registration.scope).href));

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(VERSION)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// The shell from the cache at once, refreshed behind it; the API is never cached.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  url.search = "";
  if (event.request.method !== "GET" || !SHELL_URLS.has(url.href)) return;
  event.respondWith(
    caches.open(VERSION).then(async (cache) => {
      const cached = await cache.match(url.href);
      const fresh = fetch(event.request)
        .then((resp) => {
          if (resp.ok) cache.put(url.href, resp.clone());
          return resp;
        })
        .catch(() => cached);
      if (cached) {
        event.waitUntil(fresh);
        return cached;
      }
      return fresh;
    }),
  );
});

function alertPage(alertId) {
  return new URL(alertId ? `./?via=web_push#alert/${alertId}` : "./", self.registration.scope).href;
}

async function tellWindows(message) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of windows) client.postMessage(message);
}

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = { body: event.data ? event.data.text() : "" };
  }
  const payload = data.data || data;
  const alertId = payload.alert_id || null;
  const title = (data.notification && data.notification.title) || data.title || "Cardiac arrest nearby";
  const body = (data.notification && data.notification.body) || data.body || "";
  event.waitUntil(
    Promise.all([
      alertId
        ? tellWindows({ type: payload.type === "stand_down" ? "stand-down" : "pushed", alert_id: alertId })
        : null,
      self.registration.showNotification(title, {
        body,
        tag: alertId || "dispatch",
        renotify: true,
        requireInteraction: true,
        vibrate: [400, 200, 400, 200, 400],
        icon: "icon-192.png",
        data: { alert_id: alertId },
      }),
    ]),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const alertId = event.notification.data && event.notification.data.alert_id;
  const target = alertPage(alertId);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      for (const client of windows) {
        if (client.url.startsWith(self.registration.scope)) {
          client.postMessage({ type: "open-alert", alert_id: alertId });
          return client.focus();
        }
      }
      return self.clients.openWindow(target);
    }),
  );
});
