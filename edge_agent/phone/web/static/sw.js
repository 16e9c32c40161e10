// Service worker: the app shell is cached so stored reports open offline. Calls to room
// devices (cross-origin POST) are never touched or cached, nor are the site CA and CRL.
const VERSION = "edge-agent-cc32fa4cb5100c2d";
const SHELL = ["./", "./index.html", "./app.js", "./app.css", "./capture-worklet.js", "./manifest.webmanifest", "./icon-192.png", "./icon-512.png"];

self.addEventListener("install", (ev) => {
  ev.waitUntil(caches.open(VERSION).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
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
