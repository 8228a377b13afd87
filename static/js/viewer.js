// The series viewer (DESIGN.md): vanilla JavaScript and <canvas>, no build step, no dependency. One viewer
// for every page that shows images: the readers' reading page (static/reader_study/reading.js) and the
// coordinator's series page (static/imaging/series_view.js, which subclasses Viewer to draw tumour boxes).
//
// A series arrives as one binary volume (uint16 little-endian, frames x rows x cols, gzip on the wire)
// plus metadata (pixel spacing, slice positions, orientation, rescale, default window). The whole series
// is loaded before it is shown. Window/level is applied here on the 16-bit values through a lookup table.
// 1-3 viewports; scrolling is synchronised by slice *position* between parallel series. Nothing about the
// patient or dates is drawn: the overlays show the sequence code, slice number, window and zoom only.
//
// Public: window.ReaderViewer = { Viewer, ActiveTimer, postJSON, csrfToken }.
// Hooks a page may override in a subclass of Viewer: onSeriesShown(vp), onDrawn(vp) (draw over the slice on
// vp.ctx; vp.imageRect() says where the slice lies on the canvas) and pointerMode(event, vp) (what a drag
// does: "window", "pan", "zoom", null, or the page's own { move(event), up(event) }; vp.pixelAt() maps the pointer
// to a pixel of the slice). buildSeriesList, markList, stepSeries and cycleLayout may be made no-ops.
(function () {
  "use strict";

  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const PARALLEL = 0.99;            // |cos| above which two slice normals count as parallel
  const IDLE_MS = 60000;            // no input for this long: the reader is not reading
  const volumes = new Map();        // volume url -> Promise<Volume>, shared by every viewport of the page

  // ---- geometry ---------------------------------------------------------------------------------------
  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
  function normalOf(orientation) {
    const n = cross(orientation.slice(0, 3), orientation.slice(3, 6));
    const len = Math.hypot(n[0], n[1], n[2]) || 1;
    return [n[0] / len, n[1] / len, n[2] / len];
  }

  // ---- volumes ----------------------------------------------------------------------------------------
  function storedMax(series, data) {
    // The largest stored value, from the metadata's real-value range when present (no pass over the data).
    const r = series.rescale, range = series.value_range;
    if (range && r.slope > 0) return Math.min(65535, Math.ceil((range[1] - r.intercept) / r.slope));
    let max = 0;
    for (let i = 0; i < data.length; i++) if (data[i] > max) max = data[i];
    return max;
  }

  function makeVolume(series, data) {
    const max = storedMax(series, data);
    const normal = normalOf(series.orientation);
    const positions = series.slice_positions.length === series.n_slices ? series.slice_positions : null;
    return { series, data, max, normal, positions, frame: series.rows * series.cols };
  }

  async function readBody(response, expected, onProgress) {
    if (!response.body || !onProgress) return new Uint8Array(await response.arrayBuffer());
    const reader = response.body.getReader();
    const bytes = new Uint8Array(expected);
    let offset = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (offset + value.length > expected) throw new Error("more data than the series' shape");
      bytes.set(value, offset);
      offset += value.length;
      onProgress(offset / expected);
    }
    return offset === expected ? bytes : bytes.subarray(0, offset);
  }

  async function fetchVolume(series, onProgress) {
    const expected = series.n_slices * series.rows * series.cols * 2;
    const response = await fetch(series.volume_url, { credentials: "same-origin" });
    if (!response.ok) throw new Error("series " + series.code + ": the server answered " + response.status);
    const bytes = await readBody(response, expected, onProgress);
    if (bytes.length !== expected) {
      throw new Error("series " + series.code + ": " + bytes.length + " bytes, expected " + expected);
    }
    let data = new Uint16Array(bytes.buffer, bytes.byteOffset, expected / 2);
    if (!LITTLE_ENDIAN) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, expected);
      data = Uint16Array.from({ length: expected / 2 }, (_, i) => view.getUint16(2 * i, true));
    }
    return makeVolume(series, data);
  }

  function loadVolume(series, onProgress) {
    let promise = volumes.get(series.volume_url);
    if (!promise) {
      promise = fetchVolume(series, onProgress);
      volumes.set(series.volume_url, promise);
      promise.catch(() => volumes.delete(series.volume_url));
    }
    return promise;
  }

  // ---- one viewport -----------------------------------------------------------------------------------
  class Viewport {
    constructor(viewer, index) {
      this.viewer = viewer;
      this.index = index;
      this.el = document.createElement("div");
      this.el.className = "viewport";
      this.el.dataset.index = String(index);
      this.el.innerHTML =
        '<canvas></canvas>' +
        '<div class="ov ov-tl"></div><div class="ov ov-bl"></div><div class="ov ov-br"></div>' +
        '<div class="loading" hidden><span class="loading-text"></span><div class="bar"><div class="fill"></div></div></div>';
      this.canvas = this.el.querySelector("canvas");
      this.ctx = this.canvas.getContext("2d");
      this.image = document.createElement("canvas");   // the slice at 1 px per pixel, after window/level
      this.volume = null;
      this.series = null;
      this.slice = 0;
      this.window = null;                                // {center, width} in real units
      this.lutKey = "";
      this.zoom = 1; this.panX = 0; this.panY = 0;
      this.pending = false;
      this.loadToken = 0;
      this.bindPointer();
    }

    get ready() { return this.volume !== null; }

    async show(series, { keepPosition = true } = {}) {
      const token = ++this.loadToken;
      const anchor = keepPosition ? this.viewer.anchorFor(this, series) : null;
      this.series = series;
      this.volume = null;
      this.el.dataset.ready = "0";
      this.el.dataset.seriesCode = series.code;
      this.el.dataset.seriesId = String(series.id);
      this.setLoading(series.code + " · loading", 0);
      let volume;
      try {
        volume = await loadVolume(series, (f) => { if (token === this.loadToken) this.setLoading(null, f); });
      } catch (err) {
        if (token === this.loadToken) this.setLoading("Could not load " + series.code + ": " + err.message, 0, true);
        return;
      }
      if (token !== this.loadToken) return;              // another series was asked for meanwhile
      this.volume = volume;
      this.slice = anchor !== null ? this.nearestSlice(anchor) : Math.floor(series.n_slices / 2);
      this.resetWindow(false);
      this.fit(false);
      this.setLoading(null, 1, false, true);
      this.drawNow();
      this.el.dataset.ready = "1";
      this.viewer.onSeriesShown(this);
    }

    setLoading(text, fraction, isError = false, done = false) {
      const box = this.el.querySelector(".loading");
      box.hidden = done;
      this.canvas.style.visibility = done ? "visible" : "hidden";
      if (text !== null) box.querySelector(".loading-text").textContent = text;
      box.classList.toggle("error", isError);
      box.querySelector(".fill").style.width = Math.round(100 * fraction) + "%";
    }

    // -- slices and synchronisation --
    positionOf(index) {
      const p = this.volume && this.volume.positions;
      return p ? p[index] : null;
    }

    phaseOf(index) {
      const t = this.series && this.series.temporal_positions;
      return t ? t[index] : null;
    }

    nearestSlice(point) {
      // The slice of this series nearest to a point (mm), within the current dynamic phase if any.
      const v = this.volume;
      if (!v.positions) return this.slice;
      const target = dot(point, v.normal);
      const phase = this.phaseOf(this.slice);
      let best = this.slice, bestDistance = Infinity;
      for (let i = 0; i < v.positions.length; i++) {
        if (phase !== null && this.phaseOf(i) !== phase) continue;
        const d = Math.abs(dot(v.positions[i], v.normal) - target);
        if (d < bestDistance) { bestDistance = d; best = i; }
      }
      return best;
    }

    isParallelTo(other) {
      return this.ready && other.ready && Math.abs(dot(this.volume.normal, other.volume.normal)) > PARALLEL;
    }

    setSlice(index, sync = true) {
      if (!this.ready) return;
      const clamped = Math.max(0, Math.min(this.series.n_slices - 1, index));
      if (clamped === this.slice) return;
      this.slice = clamped;
      this.draw();
      if (sync) this.viewer.syncFrom(this);
    }

    scroll(delta) { this.setSlice(this.slice + delta); }

    // -- window/level --
    resetWindow(redraw = true) {
      const w = this.series.window;
      if (w && w.width > 0) {
        this.window = { center: w.center, width: w.width };
      } else {
        const r = this.series.rescale;
        const high = this.volume.max * r.slope + r.intercept, low = r.intercept;
        this.window = { center: (high + low) / 2, width: Math.max(high - low, 1) };
      }
      if (redraw) this.draw();
    }

    valueRange() {
      const r = this.series.rescale;
      return Math.max(this.volume.max * Math.abs(r.slope), 1);
    }

    adjustWindow(dx, dy) {
      const step = this.valueRange() / 400;
      this.window = { center: this.window.center + dy * step, width: Math.max(1, this.window.width + dx * step) };
      this.draw();
    }

    lut() {
      // Stored value -> opaque grey RGBA (as one uint32), through rescale then the linear window.
      const key = this.window.center + "/" + this.window.width + "/" + this.volume.max;
      if (key === this.lutKey) return this.lutTable;
      const r = this.series.rescale, low = this.window.center - this.window.width / 2, width = this.window.width;
      // Every uint16 has an entry, so a value above the metadata's range still maps (to white).
      const table = new Uint32Array(65536);
      for (let v = 0; v < 65536; v++) {
        const g = Math.max(0, Math.min(255, Math.round(((v * r.slope + r.intercept - low) / width) * 255)));
        table[v] = (255 << 24) | (g << 16) | (g << 8) | g;
        if (v > this.volume.max && g === 255) { table.fill(table[v], v + 1); break; }
      }
      this.lutKey = key;
      this.lutTable = table;
      return table;
    }

    // -- zoom, pan, fit --
    physicalSize() {
      const [rowSpacing, colSpacing] = this.series.pixel_spacing;
      return { w: this.series.cols * colSpacing, h: this.series.rows * rowSpacing };
    }

    baseScale() {
      const size = this.physicalSize();
      return Math.min(this.canvas.width / size.w, this.canvas.height / size.h);
    }

    fit(redraw = true) {
      this.zoom = 1; this.panX = 0; this.panY = 0;
      if (redraw) this.draw();
    }

    zoomBy(factor, cx, cy) {
      // Zoom about a canvas point, so what is under the cursor stays there.
      const zoom = Math.max(0.25, Math.min(16, this.zoom * factor));
      const f = zoom / this.zoom;
      const ox = this.canvas.width / 2 + this.panX, oy = this.canvas.height / 2 + this.panY;
      this.panX += (cx - ox) * (1 - f);
      this.panY += (cy - oy) * (1 - f);
      this.zoom = zoom;
      this.draw();
    }

    // -- drawing --
    resize() {
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(this.el.clientWidth * dpr)), h = Math.max(1, Math.round(this.el.clientHeight * dpr));
      if (this.canvas.width !== w || this.canvas.height !== h) {
        this.canvas.width = w; this.canvas.height = h;
        this.draw();
      }
    }

    imageRect(size = this.physicalSize(), k = this.baseScale() * this.zoom) {
      // Where the slice lies on the canvas (canvas pixels): fitted, zoomed and panned.
      const w = size.w * k, h = size.h * k;
      return { x: (this.canvas.width - w) / 2 + this.panX, y: (this.canvas.height - h) / 2 + this.panY, w, h };
    }

    pixelAt(clientX, clientY) {
      // The slice pixel under a pointer position (column x, row y; clamped to 0..cols and 0..rows).
      const rect = this.canvas.getBoundingClientRect(), dpr = this.canvas.width / rect.width, r = this.imageRect();
      const x = Math.floor(((clientX - rect.left) * dpr - r.x) / r.w * this.series.cols);
      const y = Math.floor(((clientY - rect.top) * dpr - r.y) / r.h * this.series.rows);
      return { x: Math.max(0, Math.min(this.series.cols, x)), y: Math.max(0, Math.min(this.series.rows, y)) };
    }

    draw() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.drawNow(); });
    }

    drawNow() {
      if (!this.ready) return;
      const s = this.series, v = this.volume;
      if (this.image.width !== s.cols || this.image.height !== s.rows) {
        this.image.width = s.cols; this.image.height = s.rows;
        this.imageData = null;
      }
      const ictx = this.image.getContext("2d");
      this.imageData = this.imageData || ictx.createImageData(s.cols, s.rows);
      const out = new Uint32Array(this.imageData.data.buffer), table = this.lut();
      const start = this.slice * v.frame;
      for (let i = 0; i < v.frame; i++) out[i] = table[v.data[start + i]];
      ictx.putImageData(this.imageData, 0, 0);
      const ctx = this.ctx, size = this.physicalSize(), k = this.baseScale() * this.zoom;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      ctx.imageSmoothingEnabled = true;
      const r = this.imageRect(size, k);
      ctx.drawImage(this.image, r.x, r.y, r.w, r.h);
      this.updateOverlays();
      this.viewer.onDrawn(this);
    }

    updateOverlays() {
      const s = this.series, phase = this.phaseOf(this.slice);
      this.el.querySelector(".ov-tl").textContent = s.code + (s.plane ? " · " + s.plane : "");
      this.el.querySelector(".ov-bl").textContent =
        "Slice " + (this.slice + 1) + " / " + s.n_slices + (phase !== null ? " · phase " + phase : "");
      this.el.querySelector(".ov-br").textContent =
        "W " + Math.round(this.window.width) + " L " + Math.round(this.window.center) + " · " + Math.round(this.zoom * 100) + "%";
      this.el.dataset.slice = String(this.slice);
      this.el.dataset.window = Math.round(this.window.center) + "/" + Math.round(this.window.width);
      this.el.dataset.zoom = this.zoom.toFixed(3);
    }

    // -- mouse --
    bindPointer() {
      const c = this.canvas;
      c.addEventListener("contextmenu", (e) => e.preventDefault());
      c.addEventListener("wheel", (e) => {
        e.preventDefault();
        this.viewer.activate(this);
        if (!this.ready) return;
        if (e.ctrlKey || e.metaKey) {
          const rect = c.getBoundingClientRect(), dpr = c.width / rect.width;
          this.zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15, (e.clientX - rect.left) * dpr, (e.clientY - rect.top) * dpr);
        } else {
          this.scroll(e.deltaY > 0 ? 1 : -1);
        }
      }, { passive: false });
      c.addEventListener("dblclick", () => this.fit());
      c.addEventListener("pointerdown", (e) => {
        this.viewer.activate(this);
        if (!this.ready) return;
        const mode = this.viewer.pointerMode(e, this);
        if (!mode) return;
        let lastX = e.clientX, lastY = e.clientY;
        const dpr = c.width / c.getBoundingClientRect().width;
        c.setPointerCapture(e.pointerId);
        const move = (m) => {
          if (typeof mode === "object") { mode.move(m); return; }
          const dx = m.clientX - lastX, dy = m.clientY - lastY;
          lastX = m.clientX; lastY = m.clientY;
          if (mode === "window") this.adjustWindow(dx, dy);
          else if (mode === "pan") { this.panX += dx * dpr; this.panY += dy * dpr; this.draw(); }
          else this.zoomBy(Math.exp(-dy / 200), c.width / 2 + this.panX, c.height / 2 + this.panY);
        };
        const up = (u) => {
          c.removeEventListener("pointermove", move); c.removeEventListener("pointerup", up);
          if (typeof mode === "object" && mode.up) mode.up(u);
        };
        c.addEventListener("pointermove", move);
        c.addEventListener("pointerup", up);
        e.preventDefault();
      });
    }
  }

  // ---- the viewer: viewports, series list, keys -------------------------------------------------------
  class Viewer {
    constructor(root, payload) {
      this.root = root;
      this.payload = payload;
      this.series = payload.series;
      this.byId = new Map(this.series.map((s) => [s.id, s]));
      this.grid = root.querySelector(".viewports");
      this.list = root.querySelector(".series-list");
      this.viewports = [];
      this.active = null;
      this.sync = true;
      this.timings = { openedAt: performance.now(), firstImage: null, switches: [] };
      window.viewerTimings = this.timings;
      this.pendingSwitch = null;
      this.buildSeriesList();
      this.bindToolbar();
      this.bindKeys();
      new ResizeObserver(() => this.viewports.forEach((v) => v.resize())).observe(this.grid);
      const defaults = payload.default_series.map((id) => this.byId.get(id)).filter(Boolean);
      this.setLayout(Math.max(1, Math.min(3, defaults.length || 1)), defaults);
    }

    // -- layout --
    setLayout(n, seriesList) {
      while (this.viewports.length < n) {
        const vp = new Viewport(this, this.viewports.length);
        this.viewports.push(vp);
        this.grid.appendChild(vp.el);
        const used = new Set(this.viewports.map((v) => v.series && v.series.id));
        const next = (seriesList && seriesList[vp.index]) || this.series.find((s) => !used.has(s.id)) || this.series[0];
        vp.resize();
        if (!next) continue;
        if (vp.index === 0 && !this.firstVolume) {
          // The first viewport's series comes first (the page preloads it): the server answers it alone.
          this.firstVolume = vp.show(next);
        } else if (this.firstVolume) {
          vp.setLoading(next.code + " · waiting", 0);
          this.firstVolume.then(() => vp.series === null && vp.show(next));
        } else {
          vp.show(next);
        }
      }
      while (this.viewports.length > n) this.grid.removeChild(this.viewports.pop().el);
      this.grid.className = "viewports layout-" + n;
      this.root.dataset.layout = String(n);
      this.viewports.forEach((v) => v.resize());
      if (!this.active || !this.viewports.includes(this.active)) this.activate(this.viewports[0]);
      this.markList();
    }

    cycleLayout() { this.setLayout(this.viewports.length % 3 + 1); }

    activate(vp) {
      if (!vp) return;
      this.active = vp;
      this.viewports.forEach((v) => v.el.classList.toggle("active", v === vp));
      this.markList();
    }

    // -- series --
    buildSeriesList() {
      this.list.innerHTML = "";
      for (const s of this.series) {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.seriesId = String(s.id);
        button.innerHTML = '<strong></strong><span class="muted"></span>';
        button.querySelector("strong").textContent = s.code;
        button.querySelector("span").textContent = (s.plane || "") + " · " + s.n_slices;
        button.addEventListener("click", () => this.showInActive(s));
        li.appendChild(button);
        this.list.appendChild(li);
      }
      if (!this.series.length) this.list.innerHTML = '<li class="muted">No images for this case.</li>';
    }

    markList() {
      const shown = new Map(this.viewports.map((v) => [v.series && v.series.id, v]));
      this.list.querySelectorAll("button").forEach((b) => {
        const vp = shown.get(Number(b.dataset.seriesId));
        b.classList.toggle("shown", Boolean(vp));
        b.classList.toggle("active", Boolean(vp) && vp === this.active);
      });
    }

    showInActive(series) {
      if (!this.active) return;
      this.pendingSwitch = { at: performance.now(), viewport: this.active };
      this.active.show(series).then(() => this.markList());
      this.markList();
    }

    stepSeries(delta) {
      if (!this.active || !this.series.length) return;
      const i = this.series.findIndex((s) => this.active.series && s.id === this.active.series.id);
      const next = this.series[(i + delta + this.series.length) % this.series.length];
      this.showInActive(next);
    }

    anchorFor(vp, series) {
      // Where a newly shown series should open: at the position shown in a parallel viewport, if any.
      if (!this.sync) return null;
      const normal = normalOf(series.orientation);
      for (const other of this.viewports) {
        if (other === vp || !other.ready) continue;
        if (Math.abs(dot(normal, other.volume.normal)) > PARALLEL) return other.positionOf(other.slice);
      }
      return vp.ready && Math.abs(dot(normal, vp.volume.normal)) > PARALLEL ? vp.positionOf(vp.slice) : null;
    }

    syncFrom(source) {
      if (!this.sync) return;
      const point = source.positionOf(source.slice);
      if (!point) return;
      for (const vp of this.viewports) {
        if (vp !== source && vp.isParallelTo(source)) vp.setSlice(vp.nearestSlice(point), false);
      }
    }

    onSeriesShown(vp) {
      if (this.timings.firstImage === null) {
        this.timings.firstImage = performance.now();
        performance.mark("viewer-first-image");
        this.root.dataset.firstImage = "1";
        this.preloadAll();
      }
      if (this.pendingSwitch && this.pendingSwitch.viewport === vp) {
        this.timings.switches.push(performance.now() - this.pendingSwitch.at);
        this.pendingSwitch = null;
      }
      this.markList();
    }

    onDrawn() { /* hook for pages */ }

    pointerMode(e) {
      // The readers' mouse: drag for window/level, middle or shift-drag to pan, right-drag to zoom.
      return e.button === 1 || (e.button === 0 && e.shiftKey) ? "pan" : e.button === 2 ? "zoom" : "window";
    }

    preloadAll() {
      // The rest of this case's series, one after the other, then the next case's first ones (HTTP cache).
      const rest = this.series.filter((s) => !this.viewports.some((v) => v.series && v.series.id === s.id));
      let chain = Promise.resolve();
      for (const s of rest) chain = chain.then(() => loadVolume(s).catch(() => null));
      chain.then(() => Promise.all((this.payload.prefetch || []).map((url) =>
        fetch(url, { credentials: "same-origin" }).then((r) => r.arrayBuffer()).catch(() => null))));
    }

    // -- toolbar and keys --
    bindToolbar() {
      const on = (action, fn) => this.root.querySelectorAll('[data-action="' + action + '"]').forEach((b) => b.addEventListener("click", fn));
      [1, 2, 3].forEach((n) => on("layout-" + n, () => this.setLayout(n)));
      on("fit", () => this.active && this.active.fit());
      on("reset-window", () => this.active && this.active.ready && this.active.resetWindow());
      on("fullscreen", () => this.toggleFullscreen());
      on("help", () => this.toggleHelp());
      const sync = this.root.querySelector('[data-action="sync"]');
      if (sync) sync.addEventListener("change", () => { this.sync = sync.checked; });
    }

    toggleFullscreen() {
      if (document.fullscreenElement) document.exitFullscreen();
      else if (this.root.requestFullscreen) this.root.requestFullscreen().catch(() => null);
    }

    toggleHelp(force) {
      const help = document.getElementById("viewer-help");
      if (help) help.hidden = force !== undefined ? !force : !help.hidden;
    }

    bindKeys() {
      document.addEventListener("keydown", (e) => {
        const typing = e.target.closest && e.target.closest("input:not([type=radio]):not([type=checkbox]), textarea, select");
        if (e.key === "Escape") { this.toggleHelp(false); return; }
        if (typing || e.altKey || e.ctrlKey || e.metaKey) return;
        const vp = this.active;
        const handled = {
          ArrowUp: () => vp && vp.scroll(-1), ArrowDown: () => vp && vp.scroll(1),
          Home: () => vp && vp.setSlice(0), End: () => vp && vp.ready && vp.setSlice(vp.series.n_slices - 1),
          PageUp: () => this.stepSeries(-1), PageDown: () => this.stepSeries(1),
          r: () => vp && vp.ready && vp.resetWindow(), z: () => vp && vp.fit(),
          f: () => this.toggleFullscreen(), v: () => this.cycleLayout(),
          "?": () => this.toggleHelp(), h: () => this.toggleHelp(),
        }[e.key];
        if (handled) { e.preventDefault(); handled(); }
      });
    }
  }

  // ---- active reading time ------------------------------------------------------------------------------
  // Counts time only while the page is visible, has the focus and the reader used mouse or keys in the last
  // minute; reports it every 15 s and when the page is hidden or left (fetch keepalive).
  class ActiveTimer {
    constructor(url) {
      this.url = url;
      this.pending = 0;
      this.total = 0;
      this.lastInput = performance.now();
      this.lastTick = performance.now();
      const touch = () => { this.lastInput = performance.now(); };
      ["pointermove", "pointerdown", "wheel", "keydown", "touchstart"].forEach((t) =>
        window.addEventListener(t, touch, { passive: true, capture: true }));
      setInterval(() => this.tick(), 1000);
      setInterval(() => this.flush(), 15000);
      document.addEventListener("visibilitychange", () => { this.tick(); if (document.hidden) this.flush(true); });
      window.addEventListener("pagehide", () => { this.tick(); this.flush(true); });
    }

    isActive(now) {
      return document.visibilityState === "visible" && document.hasFocus() && now - this.lastInput < IDLE_MS;
    }

    tick() {
      const now = performance.now();
      const dt = Math.min((now - this.lastTick) / 1000, 2);
      this.lastTick = now;
      if (this.isActive(now)) { this.pending += dt; this.total += dt; }
    }

    take() { this.tick(); const s = this.pending; this.pending = 0; return s; }

    giveBack(seconds) { this.pending += seconds; }

    flush(keepalive = false) {
      const seconds = this.take();
      if (seconds < 0.5) { this.giveBack(seconds); return; }
      postJSON(this.url, { seconds: Math.round(seconds * 10) / 10 }, keepalive).catch(() => this.giveBack(seconds));
    }
  }

  // ---- helpers --------------------------------------------------------------------------------------
  async function postJSON(url, body, keepalive = false) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin", keepalive,
      headers: { "Content-Type": "application/json", "X-CSRFToken": window.csrfToken() }, body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = data.detail || Object.entries(data).map(([k, v]) => k + ": " + [].concat(v).join(" ")).join("; ");
      throw new Error(message || "the server answered " + response.status);
    }
    return data;
  }

  window.ReaderViewer = { Viewer, ActiveTimer, postJSON, csrfToken: window.csrfToken };
})();
