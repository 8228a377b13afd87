// The worklist's and the study home's idle-time warm-up (templates/reader_study/_warm_up.html): the opening
// slices of the case that the page's main button opens, fetched the way the viewer's loader will ask for them
// (static/js/volume_loader.js: fetch, same-origin credentials), so that the reading page's first image comes from
// the HTTP cache. A fetch, not <link rel="prefetch">: Chromium revalidated those (measured: a 304 round trip
// instead of a cache hit; docs/reader_study_loading.md).
(function () {
  "use strict";
  const data = document.getElementById("warm-up-urls");
  if (!data) return;
  const urls = JSON.parse(data.textContent);
  const go = () => urls.forEach((url) => fetch(url, { credentials: "same-origin" })
    .then((r) => r.arrayBuffer()).catch(() => null));
  const idle = window.requestIdleCallback || ((fn) => setTimeout(fn, 200));
  if (document.readyState === "complete") idle(go); else window.addEventListener("load", () => idle(go));
})();
