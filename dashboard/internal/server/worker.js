// The dashboard's service worker. The server fills in the version and the
// resources to cache.
//
// Every step a page waits on is inside event.waitUntil, so the browser keeps
// the worker alive until it is done and knows whether it worked: a version
// whose resources could not all be cached fails to install and is fetched
// again at the page's next update check, instead of waiting forever with a
// partial cache. Once its cache is complete, a new version takes over the
// open pages at once, and they offer to reload.
const cacheName = "app-{{.Version}}";
const resourcesToCache = {{.ResourcesToCache}};

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(cacheName);
    await cache.addAll(resourcesToCache);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) {
      if (key !== cacheName) {
        await caches.delete(key);
      }
    }
    await self.clients.claim();
  })());
});

// Resources of this version come from its cache; anything else (the relay's
// API, a resource added after the cache was filled) from the network.
self.addEventListener("fetch", (event) => {
  event.respondWith((async () => {
    const cache = await caches.open(cacheName);
    return (await cache.match(event.request)) || fetch(event.request);
  })());
});
