// Vigil worker app service worker: keeps the app shell so the app starts
// without a network. API calls are never intercepted: the page's own
// IndexedDB queue keeps events while offline.
"use strict";
const CACHE = "vigil-app-v1";
const SHELL = ["/app/", "/app/app.js", "/app/app.css", "/app/manifest.webmanifest", "/app/icon.svg"];

self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (e) => {
  e.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (e) => {
  const req = e.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith("/app/")) return;
  const key = req.mode === "navigate" ? "/app/" : url.pathname;
  if (!SHELL.includes(key)) return;
  // Network first (fresh after an upgrade), the cached shell when offline.
  e.respondWith(fetch(req).then((resp) => {
    if (resp.ok) {
      const copy = resp.clone();
      caches.open(CACHE).then((c) => c.put(key, copy));
    }
    return resp;
  }).catch(() => caches.match(key).then((r) => r || Response.error())));
});
