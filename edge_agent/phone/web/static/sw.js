// Service worker: the app shell is cached so stored reports open offline. Calls to room
// devices (cross-origin POST) are never touched or cached, nor are the site CA and CRL.
const VERSION = "edge-agent-d46afa5e52677881";
const SHELL = ["./", "./index.html", "./app.js", "./app.css", "./capture-worklet.js", "./manifest.webmanifest", "./icon-192.png", "./icon-512.png"];

self.addEventListener("install", (ev) => {
  // from the site itself, not the HTTP cache: app.js may be cached there for an hour, and a new version would
  // otherwise keep the old code under its new name
  ev.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL.map((u) => new Request(u, { cache: "reload" }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== VERSION).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (url.pathname.endsWith("/ca.pem") || url.pathname.endsWith("/crl.pem")) return; // always the site's current ones
  ev.respondWith(caches.match(ev.request, { ignoreSearch: true }).then((hit) => hit || fetch(ev.request)));
});
