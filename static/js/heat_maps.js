// Exam 2's AI heat-maps (issue 18): the Grad-CAM maps of a series, fetched the first time the overlay needs them,
// decoded once and coloured once into a small canvas per slice, which static/js/viewer.js draws over the slice.
// Included before viewer.js on the reading page; a page without heat-maps (exam 1, descriptors, the coordinator's
// series page) never creates a store, so never asks for a map.
//
// The payload's heat_maps: { default_on, series: { <series handle>: <url> }, legend, what } (reader_study.payloads).
// GET <url> -> { size: S, colormap: [[r, g, b] x 256], slices: [{ slice, window: [left, top, side], map }] }:
// `map` is a grey S x S PNG (base64) covering the square `window` of frame `slice` (the slice's pixels; the square
// may run past the image). Colour rule (inference/saliency_figure.py overlay): value v -> colormap[v] with alpha
// v / 255, so 0 is transparent; the viewer multiplies by the reader's opacity when it draws (globalAlpha), so a new
// opacity redraws without recolouring.
//
// The PNG is decoded with createImageBitmap from a Blob: the site's CSP allows no data: or blob: image URL.
//
// Public: window.HeatMapStore.
(function () {
  "use strict";

  function pngBytes(base64) {
    const text = atob(base64), bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  }

  async function colouredSlice(entry, size, colormap) {
    // One slice's map as a canvas of size x size: RGBA = colormap[v], alpha v (the grey PNG's value v, 0-255).
    const bitmap = await createImageBitmap(new Blob([pngBytes(entry.map)], { type: "image/png" }),
      { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    const canvas = document.createElement("canvas");
    canvas.width = size; canvas.height = size;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0, size, size);
    bitmap.close();
    const grey = ctx.getImageData(0, 0, size, size), px = grey.data;    // decoded once, coloured in place
    for (let i = 0; i < px.length; i += 4) {
      const v = px[i], rgb = colormap[v];
      px[i] = rgb[0]; px[i + 1] = rgb[1]; px[i + 2] = rgb[2]; px[i + 3] = v;
    }
    ctx.putImageData(grey, 0, 0);
    const [left, top, side] = entry.window;
    return { canvas, left, top, side };
  }

  class HeatMapStore {
    // urls: { series handle -> url }; onLoaded(handle): a series' maps are in (or failed), the viewer redraws.
    constructor(urls, onLoaded) {
      this.urls = urls || {};
      this.onLoaded = onLoaded;
      this.series = new Map();      // handle -> { state: "loading" | "ready" | "failed", slices: Map(frame -> map) }
    }

    has(handle) { return Object.prototype.hasOwnProperty.call(this.urls, handle); }

    state(handle) {
      // "none" (no maps for this series), "loading", "ready" or "failed"; asking starts the series' one fetch.
      if (!this.has(handle)) return "none";
      if (!this.series.has(handle)) this.load(handle);
      return this.series.get(handle).state;
    }

    slice(handle, frame) {
      // The coloured map of one frame ({canvas, left, top, side}), or null: none there, or not here yet.
      const entry = this.state(handle) === "ready" ? this.series.get(handle) : null;
      return entry ? entry.slices.get(frame) || null : null;
    }

    forgetFailed() {
      // Series whose fetch failed are asked for again the next time the overlay needs them.
      for (const [handle, entry] of this.series) if (entry.state === "failed") this.series.delete(handle);
    }

    async load(handle) {
      const entry = { state: "loading", slices: new Map(), error: "" };
      this.series.set(handle, entry);
      try {
        const response = await fetch(this.urls[handle], { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error("the server answered " + response.status);
        const data = await response.json();
        const coloured = await Promise.all(data.slices.map((s) => colouredSlice(s, data.size, data.colormap)));
        data.slices.forEach((s, i) => entry.slices.set(s.slice, coloured[i]));
        entry.state = "ready";
      } catch (err) {
        entry.state = "failed";
        entry.error = err.message;
      }
      this.onLoaded(handle, entry);
    }
  }

  window.HeatMapStore = HeatMapStore;
})();
