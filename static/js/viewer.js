// The series viewer (DESIGN.md): vanilla JavaScript and <canvas>, no build step, no dependency. One viewer
// for every page that shows images: the readers' reading page (static/reader_study/reading.js) and the
// coordinator's series page (static/imaging/series_view.js, which subclasses Viewer to draw tumour boxes).
//
// A series arrives as one binary volume (uint16 little-endian, frames x rows x cols, gzip on the wire)
// plus metadata (pixel spacing, slice positions, orientation, rescale, default window). Loading is
// static/js/volume_loader.js (included before this file): a viewport draws the slice it opens on as soon as that
// frame is in and the rest streams in behind it, outward from the slice shown. Window/level is applied here on the 16-bit values through a lookup table.
// 1-3 viewports or a 2x2 grid; scrolling is synchronised by slice *position* between parallel series. Nothing
// about the patient or dates is drawn: the overlays show the sequence code, slice number and position, phase,
// window, zoom and orientation letters only.
//
// Reading tools (docs/viewer.md): window presets per sequence (PRESETS, keys 1-5) and invert (I); orientation
// letters from the direction cosines; the active slice's reference line on the other viewports; a length tool
// (G) and an ellipse ROI (E) with mean ± SD in real units, and the value under the pointer; phases of a dynamic
// series as a second axis (<- / ->) with cine (C). Measurements are the reader's scratch work: kept in this
// page's memory only (gone with the case), never sent anywhere. In exam 2, where the payload offers them
// (payload.heat_maps), the AI's heat-maps over the tumour slices (H, an opacity slider, a legend; issue 18): each
// series' maps are fetched the first time the overlay needs them (static/js/heat_maps.js, included before this
// file on that page only); without them there is no control, no request, and H does nothing.
//
// Public: window.ReaderViewer = { Viewer, ActiveTimer, postJSON, csrfToken }.
// Hooks a page may override in a subclass of Viewer: onSeriesShown(vp), onDrawn(vp) (draw over the slice on
// vp.ctx; vp.imageRect() says where the slice lies on the canvas) and pointerMode(event, vp) (what a drag
// does: "window", "pan", "zoom", null, or the page's own { move(event), up(event) }; vp.pixelAt() maps the pointer
// to a pixel of the slice). buildSeriesList, markList, stepSeries and cycleLayout may be made no-ops.
(function () {
  "use strict";

  const PARALLEL = 0.99;            // |cos| above which two slice normals count as parallel
  const IDLE_MS = 60000;            // no input for this long: the reader is not reading
  const CINE_MS = 250;              // cine: the next phase (or slice) every 250 ms
  const LAYOUTS = [1, 2, 3, 4];     // viewports; 4 is the 2x2 grid
  const SLIDER_KEYS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "PageUp", "PageDown", "Home", "End"]);

  // Window presets per sequence family, keys 1-5 (listed in the help overlay, templates/reader_study/_help.html).
  // MR signal has no absolute scale, so a preset is a pair of percentiles of the series' non-zero values
  // (p: [low, high] %); ADC maps have one, so theirs are absolute, in 10^-3 mm²/s (adc: [low, high]).
  // Preset 1 is always the series' own window (the scanner's, else the full range): the same as R.
  const SERIES_WINDOW = { name: "series default" };
  const PRESETS = {
    T2: [SERIES_WINDOW, { name: "soft tissue", p: [5, 95] }, { name: "tumour contrast", p: [25, 85] },
      { name: "fluid", p: [30, 99.8] }, { name: "full range", p: [0, 100] }],
    T1: [SERIES_WINDOW, { name: "soft tissue", p: [5, 95] }, { name: "fat / blood (bright)", p: [40, 99.8] },
      { name: "tumour contrast", p: [20, 80] }, { name: "full range", p: [0, 100] }],
    DWI: [SERIES_WINDOW, { name: "restriction", p: [50, 99.8] }, { name: "soft", p: [10, 98] },
      { name: "low signal", p: [0, 70] }, { name: "full range", p: [0, 100] }],
    ADC: [SERIES_WINDOW, { name: "ADC 0-3", adc: [0, 3] }, { name: "ADC 0-2 (restriction)", adc: [0, 2] },
      { name: "ADC 0.5-1.5", adc: [0.5, 1.5] }, { name: "full range", p: [0, 100] }],
    dynamic: [SERIES_WINDOW, { name: "enhancement", p: [20, 99.8] }, { name: "soft tissue", p: [5, 95] },
      { name: "subtle enhancement", p: [40, 90] }, { name: "full range", p: [0, 100] }],
    other: [SERIES_WINDOW, { name: "soft tissue", p: [5, 95] }, { name: "contrast", p: [25, 85] },
      { name: "bright", p: [30, 99.8] }, { name: "full range", p: [0, 100] }],
  };

  function sequenceFamily(code) {
    // The preset family of a sequence code (core.constants.SEQUENCE_CODES): dynamic*, ADC, DWI, *T1*, *T2*.
    if (code === "ADC" || code === "DWI") return code;
    if (code.startsWith("dynamic")) return "dynamic";
    if (code.includes("T1")) return "T1";
    return code.includes("T2") ? "T2" : "other";
  }

  function valueUnits(series) {
    // How real values (stored x slope + intercept) are shown: ADC in 10^-3 mm²/s, MR signal in arbitrary units.
    // The payload names no units (series.units, when it comes, wins): an ADC map whose values reach above 20 is
    // taken to be in 10^-6 mm²/s (Siemens, GE, Philips maps), one below in 10^-3 mm²/s.
    if (series.units) return { label: series.units, scale: 1, assumed: false };
    if (series.code !== "ADC") return { label: "a.u.", scale: 1, assumed: false };
    const high = series.value_range ? series.value_range[1] : Infinity;
    return { label: "10⁻³ mm²/s", scale: high > 20 ? 0.001 : 1, assumed: true };
  }

  // ---- geometry ---------------------------------------------------------------------------------------
  function cross(a, b) { return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]; }
  function dot(a, b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
  function normalOf(orientation) {
    const n = cross(orientation.slice(0, 3), orientation.slice(3, 6));
    const len = Math.hypot(n[0], n[1], n[2]) || 1;
    return [n[0] / len, n[1] / len, n[2] / len];
  }

  // Patient axes are DICOM's LPS: +x towards the patient's left, +y posterior, +z head.
  const AXIS_LETTERS = [["L", "R"], ["P", "A"], ["H", "F"]];
  function directionLetters(v) {
    // The letters of a direction, dominant axis first; an axis counts from 0.3 of the unit vector (obliques: "LP").
    return [0, 1, 2].filter((i) => Math.abs(v[i]) > 0.3).sort((a, b) => Math.abs(v[b]) - Math.abs(v[a]))
      .map((i) => AXIS_LETTERS[i][v[i] > 0 ? 0 : 1]).join("");
  }

  function orientationLabels(orientation) {
    // Which way each edge of the image points: the row cosines run to the right, the column cosines downwards.
    const row = orientation.slice(0, 3), col = orientation.slice(3, 6), neg = (v) => v.map((x) => -x);
    return { left: directionLetters(neg(row)), right: directionLetters(row),
      top: directionLetters(neg(col)), bottom: directionLetters(col) };
  }

  function formatValue(v) {
    // A real value with the digits that matter: 1234, 123.4 -> 123, 12.3, 1.23, 0.0123.
    if (!Number.isFinite(v)) return "–";
    const a = Math.abs(v);
    return a >= 100 ? String(Math.round(v)) : a >= 10 ? v.toFixed(1) : a >= 1 || a === 0 ? v.toFixed(2) : v.toPrecision(3);
  }

  function percentiles(data, wanted) {
    // Stored-value percentiles (0-100) of the non-zero values of a uint16 array, through one histogram pass.
    const hist = new Uint32Array(65536);
    for (let i = 0; i < data.length; i++) hist[data[i]]++;
    const total = data.length - hist[0];
    return wanted.map((q) => {
      const target = Math.max(1, Math.ceil((q / 100) * total));
      let seen = 0;
      for (let v = 1; v < 65536; v++) { seen += hist[v]; if (seen >= target) return v; }
      return 0;
    });
  }

  // ---- volumes ----------------------------------------------------------------------------------------
  // static/js/volume_loader.js: one Volume per series URL, shared by every viewport of the page, filled frame by
  // frame (volume.has(i)); openVolume fetches only what viewports watch, loadVolume resolves once every frame is in.
  function afterPaint(fn) {
    // Run fn once the browser has painted the current frame: a rAF callback runs before the paint, a task queued
    // from it runs after.
    requestAnimationFrame(() => setTimeout(fn, 0));
  }
  function openVolume(series) { return window.VolumeLoader.open(series); }
  function loadVolume(series, onProgress) { return window.VolumeLoader.complete(series, onProgress); }

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
        '<div class="ov ov-tl"></div><div class="ov ov-tr"></div><div class="ov ov-bl"></div><div class="ov ov-br"></div>' +
        '<div class="ov ov-edge ov-left"></div><div class="ov ov-edge ov-right"></div>' +
        '<div class="ov ov-edge ov-top"></div><div class="ov ov-edge ov-bottom"></div>' +
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
      this.inverted = false;
      this.preset = null;                                // the index (0-4) of the window preset in use, if any
      this.axes = null;                                  // a dynamic series' phases (see buildAxes)
      this.cine = null;                                  // the cine timer while it plays
      this.draft = null;                                 // a measurement being drawn: {kind, a, b}
      this.bindPointer();
    }

    get ready() { return this.volume !== null; }

    async show(series, { keepPosition = true } = {}) {
      const token = ++this.loadToken;
      const anchor = keepPosition ? this.viewer.anchorFor(this, series) : null;
      this.stopWatching();
      this.series = series;
      this.volume = null;
      this.resetTools();
      this.el.dataset.ready = "0";
      this.el.dataset.seriesCode = series.code;
      this.el.dataset.seriesId = String(series.id);
      this.setLoading(series.code + " · loading", 0);
      // Only the slice this viewport opens on is waited for; the loader streams the rest behind it.
      const volume = openVolume(series);
      const slice = anchor !== null ? this.nearestSlice(anchor, volume) : Math.floor(series.n_slices / 2);
      this.watching = volume;
      this.unwatch = volume.listen((index) => this.frameArrived(volume, index));
      volume.watch(this, slice, this.viewer.active === this);
      try {
        await volume.frameReady(slice, (f) => { if (token === this.loadToken) this.setLoading(null, f); });
      } catch (err) {
        if (token === this.loadToken) this.setLoading("Could not load " + series.code + ": " + err.message, 0, true);
        return;
      }
      if (token !== this.loadToken) return;              // another series was asked for meanwhile
      this.volume = volume;
      this.slice = slice;
      this.el.dataset.loadedSlices = String(volume.count);
      this.el.dataset.loadedAtFirstDraw = String(volume.count);
      this.resetWindow(false);
      this.fit(false);
      this.setLoading(null, 1, false, true);
      this.drawNow();
      this.el.dataset.ready = "1";
      this.viewer.onSeriesShown(this);
    }

    stopWatching() {
      if (this.unwatch) this.unwatch();
      if (this.watching) this.watching.release(this);
      this.unwatch = this.watching = null;
    }

    frameArrived(volume, index) {
      // A frame of the watched volume is in: count it, and draw it if it is the slice this viewport waits on.
      if (volume !== this.volume) return;
      this.el.dataset.loadedSlices = String(volume.count);
      if (index === this.slice) this.draw();
    }

    drawWaiting() {
      // The slice shown has not arrived yet: a black frame that says so (never the previous slice under this
      // one's number), drawn over by frameArrived as soon as it is in.
      const ctx = this.ctx;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      ctx.fillStyle = "#aaa";
      ctx.font = Math.round(14 * (window.devicePixelRatio || 1)) + "px sans-serif";
      ctx.textAlign = "center";
      ctx.fillText("loading slice " + (this.slice + 1) + " …", this.canvas.width / 2, this.canvas.height / 2);
      ctx.textAlign = "start";
      this.el.dataset.sliceLoaded = "0";
      this.updateOverlays();
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

    nearestSlice(point, v = this.volume) {
      // The slice of this series (or of volume v, about to be shown) nearest to a point (mm), within the current
      // dynamic phase if any.
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
      this.viewer.referenceMoved(this);
    }

    scroll(delta) {
      // Along the slice axis; a dynamic series stays in its phase.
      if (this.ready && this.axes) this.setSlice(this.frameAt(this.phaseIndex(), this.sliceInPhase() + delta));
      else this.setSlice(this.slice + delta);
    }

    goToEnd(last) {
      // First or last slice (of the phase shown, in a dynamic series).
      if (!this.ready) return;
      if (this.axes) this.setSlice(this.frameAt(this.phaseIndex(), last ? Infinity : 0));
      else this.setSlice(last ? this.series.n_slices - 1 : 0);
    }

    // -- reading tools: state that belongs to the series shown --
    resetTools() {
      this.stopCine();
      this.inverted = false;
      this.preset = null;
      this.draft = null;
      this.readout = null;
      this.buildAxes();
      this.sliceStep = this.measureSliceStep();
    }

    buildAxes() {
      // A dynamic series is one stack of phase-major frames (imaging.volumes.slice_order): here it becomes two
      // axes, slices within a phase and phases at one slice. frames[phase][slice] -> frame; where[frame] -> both.
      const t = this.series.temporal_positions, n = this.series.n_slices;
      const phases = t && t.length === n ? [...new Set(t)].sort((a, b) => a - b) : [];
      if (phases.length < 2) { this.axes = null; return; }
      const frames = phases.map(() => []), where = new Array(n);
      for (let i = 0; i < n; i++) {
        const p = phases.indexOf(t[i]);
        where[i] = [p, frames[p].length];
        frames[p].push(i);
      }
      this.axes = { phases, frames, where };
    }

    phaseIndex(frame = this.slice) { return this.axes ? this.axes.where[frame][0] : 0; }
    sliceInPhase(frame = this.slice) { return this.axes ? this.axes.where[frame][1] : frame; }
    slicesPerPhase() { return this.axes ? this.axes.frames[this.phaseIndex()].length : this.series.n_slices; }

    frameAt(phase, slice) {
      const frames = this.axes.frames[phase];
      return frames[Math.max(0, Math.min(frames.length - 1, slice))];
    }

    stepPhase(delta, wrap = false) {
      // The next phase at the same slice (same position: the other viewports stay where they are).
      if (!this.ready || !this.axes) return;
      const n = this.axes.phases.length, p = this.phaseIndex() + delta;
      this.setSlice(this.frameAt(wrap ? (p % n + n) % n : Math.max(0, Math.min(n - 1, p)), this.sliceInPhase()), false);
    }

    toggleCine() {
      // Play: a dynamic series steps through its phases at the slice shown; another series loops its slices.
      if (this.cine) { this.stopCine(); return; }
      if (!this.ready) return;
      this.cine = setInterval(() => {
        if (!this.ready) return;
        if (this.axes) this.stepPhase(1, true);
        else this.setSlice((this.slice + 1) % this.series.n_slices);
      }, CINE_MS);
      this.el.dataset.cine = "1";
    }

    stopCine() {
      if (this.cine) clearInterval(this.cine);
      this.cine = null;
      this.el.dataset.cine = "0";
    }

    measureSliceStep() {
      // The distance between neighbouring slices (mm): the median step of the slice positions along the normal
      // (within one phase). The overlay shows the slice thickness where the payload has it, else this spacing.
      const p = this.series.slice_positions, n = normalOf(this.series.orientation);
      if (!p || p.length < 2) return null;
      const frames = this.axes ? this.axes.frames[0] : p.map((_, i) => i);
      const steps = [];
      for (let i = 1; i < frames.length; i++) {
        const d = Math.abs(dot(p[frames[i]], n) - dot(p[frames[i - 1]], n));
        if (d > 1e-3) steps.push(d);
      }
      steps.sort((a, b) => a - b);
      return steps.length ? steps[Math.floor(steps.length / 2)] : null;
    }

    // -- window/level --
    resetWindow(redraw = true) {
      this.preset = null;
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
      this.preset = null;
      const step = this.valueRange() / 400;
      this.window = { center: this.window.center + dy * step, width: Math.max(1, this.window.width + dx * step) };
      this.draw();
    }

    presets() { return PRESETS[sequenceFamily(this.series.code)]; }

    applyPreset(index) {
      // Window preset `index` (0-4) of the series' family (PRESETS).
      if (!this.ready) return;
      const preset = this.presets()[index];
      if (!preset) return;
      const r = this.series.rescale;
      if (preset === SERIES_WINDOW) {
        this.resetWindow(false);
      } else {
        let low, high;
        if (preset.adc) {
          const scale = valueUnits(this.series).scale;
          [low, high] = preset.adc.map((v) => v / scale);
        } else {
          [low, high] = percentiles(this.volume.data, preset.p).map((v) => v * r.slope + r.intercept);
        }
        this.window = { center: (low + high) / 2, width: Math.max(high - low, 1e-6) };
      }
      this.preset = index;
      this.draw();
    }

    toggleInvert() {
      if (!this.ready) return;
      this.inverted = !this.inverted;
      this.draw();
    }

    lut() {
      // Stored value -> opaque grey RGBA (as one uint32), through rescale then the linear window (and invert).
      const key = this.window.center + "/" + this.window.width + "/" + this.volume.max + "/" + this.inverted;
      if (key === this.lutKey) return this.lutTable;
      const r = this.series.rescale, low = this.window.center - this.window.width / 2, width = this.window.width;
      // Every uint16 has an entry, so a value above the metadata's range still maps (to white).
      const table = new Uint32Array(65536);
      const top = this.inverted ? 0 : 255;
      for (let v = 0; v < 65536; v++) {
        let g = Math.max(0, Math.min(255, Math.round(((v * r.slope + r.intercept - low) / width) * 255)));
        if (this.inverted) g = 255 - g;
        table[v] = (255 << 24) | (g << 16) | (g << 8) | g;
        if (v > this.volume.max && g === top) { table.fill(table[v], v + 1); break; }
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
      v.watch(this, this.slice, this.viewer.active === this);   // the loader fetches outward from the slice shown
      if (!v.has(this.slice)) { this.drawWaiting(); return; }
      this.el.dataset.sliceLoaded = "1";
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
      this.drawHeatMap(r);
      this.drawReferenceLine(r);
      this.drawMeasurements(r);
      this.updateOverlays();
      this.viewer.onDrawn(this);
    }

    updateOverlays() {
      const s = this.series, el = this.el, data = el.dataset, preset = this.preset !== null ? this.presets()[this.preset] : null;
      el.querySelector(".ov-tl").textContent = s.code + (s.plane ? " · " + s.plane : "") +
        (preset ? " · " + preset.name : "") + (this.inverted ? " · inverted" : "");
      const position = this.positionOf(this.slice), location = position ? dot(position, this.volume.normal) : null;
      const thickness = s.slice_thickness ? "thickness " + s.slice_thickness.toFixed(1) + " mm"
        : this.sliceStep ? "spacing " + this.sliceStep.toFixed(1) + " mm" : "";
      el.querySelector(".ov-bl").textContent = [
        "Slice " + (this.sliceInPhase() + 1) + " / " + this.slicesPerPhase(),
        this.axes ? "phase " + (this.phaseIndex() + 1) + " / " + this.axes.phases.length : "",
        location !== null ? "pos " + location.toFixed(1) + " mm" : "", thickness].filter(Boolean).join("\n");
      el.querySelector(".ov-br").textContent =
        "W " + formatValue(this.window.width) + " L " + formatValue(this.window.center) + "\n" + Math.round(this.zoom * 100) + "%";
      const labels = orientationLabels(s.orientation);
      for (const edge of ["left", "right", "top", "bottom"]) el.querySelector(".ov-" + edge).textContent = labels[edge];
      this.showReadout();
      data.slice = String(this.slice);
      data.window = Math.round(this.window.center) + "/" + Math.round(this.window.width);
      data.zoom = this.zoom.toFixed(3);
      data.preset = this.preset !== null ? String(this.preset + 1) : "";
      data.inverted = this.inverted ? "1" : "0";
      data.orientationLabels = [labels.left, labels.right, labels.top, labels.bottom].join(",");
      data.position = location !== null ? location.toFixed(2) : "";
      data.sliceSpacing = this.sliceStep ? this.sliceStep.toFixed(2) : "";
      data.sliceInPhase = String(this.sliceInPhase());
      if (this.axes) data.phase = String(this.phaseIndex() + 1); else delete data.phase;
      data.phases = String(this.axes ? this.axes.phases.length : 1);
      this.exposeMeasurements();
    }

    // -- the AI's heat-map (exam 2): over the slice, in its place, under the lines and measurements --
    drawHeatMap(r) {
      // data-heat-map: absent (no maps for this series), "off", "loading", "failed", "none" (no map on this
      // slice: only tumour slices have one) or "shown".
      const store = this.viewer.heatMaps, data = this.el.dataset, handle = this.series.id;
      if (!store || !store.has(handle)) { delete data.heatMap; return; }
      if (!this.viewer.heatMapsOn) { data.heatMap = "off"; return; }
      const state = store.state(handle), map = store.slice(handle, this.slice);   // the first ask fetches
      data.heatMap = state !== "ready" ? state : map ? "shown" : "none";
      if (!map) return;
      // The map covers the square (left, top, side) of the slice's pixels; the part of it past the image (the
      // crop's padding) is clipped off.
      const ctx = this.ctx, sx = r.w / this.series.cols, sy = r.h / this.series.rows;
      ctx.save();
      ctx.beginPath();
      ctx.rect(r.x, r.y, r.w, r.h);
      ctx.clip();
      ctx.globalAlpha = this.viewer.heatMapOpacity;      // x the map's own alpha, v / 255
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(map.canvas, r.x + map.left * sx, r.y + map.top * sy, map.side * sx, map.side * sy);
      ctx.restore();
    }

    // -- reference line: where the active viewport's slice cuts this one --
    referenceLine() {
      // The segment (this series' pixel coordinates: column x, row y, pixel centres at i + 0.5) where the active
      // viewport's slice plane meets the slice shown here; null when none: same viewport, parallel planes, no
      // positions, or no crossing inside the image.
      const src = this.viewer.active;
      if (src === this || !src || !this.ready || !src.ready || this.isParallelTo(src)) return null;
      const p = this.positionOf(this.slice), q = src.positionOf(src.slice);
      if (!p || !q) return null;
      const o = this.series.orientation, [rowSpacing, colSpacing] = this.series.pixel_spacing, n = src.volume.normal;
      // A point of this slice: p + (x - 0.5) colSpacing row + (y - 0.5) rowSpacing col (p: the first pixel's centre).
      // On the source plane when a x + b y + c = 0:
      const a = colSpacing * dot(o.slice(0, 3), n), b = rowSpacing * dot(o.slice(3, 6), n);
      const c = dot([p[0] - q[0], p[1] - q[1], p[2] - q[2]], n) - 0.5 * (a + b);
      const w = this.series.cols, h = this.series.rows, points = [];
      if (Math.abs(b) > 1e-9) for (const x of [0, w]) { const y = -(a * x + c) / b; if (y >= 0 && y <= h) points.push([x, y]); }
      if (Math.abs(a) > 1e-9) for (const y of [0, h]) { const x = -(b * y + c) / a; if (x >= 0 && x <= w) points.push([x, y]); }
      let best = null, longest = 1e-6;
      for (let i = 0; i < points.length; i++) {
        for (let j = i + 1; j < points.length; j++) {
          const d = Math.hypot(points[i][0] - points[j][0], points[i][1] - points[j][1]);
          if (d > longest) { longest = d; best = [points[i], points[j]]; }
        }
      }
      return best;
    }

    drawReferenceLine(r) {
      const line = this.referenceLine();
      this.el.dataset.referenceLine = line ? line.flat().map((v) => v.toFixed(2)).join(",") : "";
      if (!line) return;
      const ctx = this.ctx, dpr = window.devicePixelRatio || 1, sx = r.w / this.series.cols, sy = r.h / this.series.rows;
      ctx.save();
      ctx.strokeStyle = "rgba(56, 189, 248, 0.85)";
      ctx.lineWidth = dpr;
      ctx.setLineDash([6 * dpr, 4 * dpr]);
      ctx.beginPath();
      ctx.moveTo(r.x + line[0][0] * sx, r.y + line[0][1] * sy);
      ctx.lineTo(r.x + line[1][0] * sx, r.y + line[1][1] * sy);
      ctx.stroke();
      ctx.restore();
    }

    // -- measurements: length (mm) and ellipse ROI (mean ± SD); in memory only, per viewport and slice --
    measureKey() { return this.index + "|" + this.series.id + "|" + this.slice; }

    measurements() { return this.viewer.measurements.get(this.measureKey()) || []; }

    sliceLoaded() { return this.ready && this.volume.has(this.slice); }

    measureDrag(event, kind) {
      if (!this.sliceLoaded()) return null;              // nothing to measure on a slice still loading
      const a = this.pointAt(event.clientX, event.clientY);
      this.draft = { kind, a, b: a };
      return {
        move: (m) => { if (this.draft) { this.draft.b = this.pointAt(m.clientX, m.clientY); this.draw(); } },
        up: () => {
          const d = this.draft;
          this.draft = null;
          if (d && Math.hypot(d.b.x - d.a.x, d.b.y - d.a.y) >= 1) {   // a click is no measurement
            const key = this.measureKey();
            this.viewer.measurements.set(key, [...this.measurements(), this.measure(d)]);
          }
          this.draw();
        },
      };
    }

    measure(d) {
      // A finished measurement with its result and label; points in pixel units (0..cols, 0..rows).
      const [rowSpacing, colSpacing] = this.series.pixel_spacing;
      if (d.kind === "length") {
        const mm = Math.hypot((d.b.x - d.a.x) * colSpacing, (d.b.y - d.a.y) * rowSpacing);
        return { ...d, mm, text: mm.toFixed(1) + " mm" };
      }
      const stats = this.ellipseStats(d.a, d.b), units = valueUnits(this.series);
      const area = Math.PI * Math.abs(d.b.x - d.a.x) / 2 * colSpacing * Math.abs(d.b.y - d.a.y) / 2 * rowSpacing;
      const lines = stats.n ? [formatValue(stats.mean) + " ± " + formatValue(stats.sd) + " " + units.label,
        stats.n + " px · " + area.toFixed(0) + " mm²"] : ["no pixel inside"];
      return { ...d, ...stats, area, units: units.label, lines, text: lines.join(" · ") };
    }

    ellipseStats(a, b) {
      // Mean and SD (n - 1) of the real values (stored x slope + intercept, in the units of valueUnits) of the
      // pixels whose centres lie inside the ellipse inscribed in the box a-b.
      const s = this.series, r = s.rescale, scale = valueUnits(s).scale, data = this.volume.data;
      const cx = (a.x + b.x) / 2, cy = (a.y + b.y) / 2, rx = Math.abs(b.x - a.x) / 2, ry = Math.abs(b.y - a.y) / 2;
      const start = this.slice * this.volume.frame;
      let n = 0, sum = 0, sum2 = 0;
      if (rx > 0 && ry > 0) {
        for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(s.rows, Math.ceil(cy + ry)); y++) {
          for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(s.cols, Math.ceil(cx + rx)); x++) {
            const u = (x + 0.5 - cx) / rx, v = (y + 0.5 - cy) / ry;
            if (u * u + v * v > 1) continue;
            const value = (data[start + y * s.cols + x] * r.slope + r.intercept) * scale;
            n++; sum += value; sum2 += value * value;
          }
        }
      }
      const mean = n ? sum / n : NaN;
      const sd = n > 1 ? Math.sqrt(Math.max(0, (sum2 - n * mean * mean) / (n - 1))) : 0;
      return { n, mean, sd };
    }

    clearMeasurements() {
      if (!this.series) return;
      this.viewer.measurements.delete(this.measureKey());
      this.draw();
    }

    drawMeasurements(r) {
      const items = this.draft ? [...this.measurements(), this.measure(this.draft)] : this.measurements();
      if (!items.length) return;
      const ctx = this.ctx, dpr = window.devicePixelRatio || 1, sx = r.w / this.series.cols, sy = r.h / this.series.rows;
      const X = (p) => r.x + p.x * sx, Y = (p) => r.y + p.y * sy;
      ctx.save();
      ctx.lineWidth = 1.5 * dpr;
      ctx.font = 12 * dpr + "px ui-monospace, monospace";
      ctx.textBaseline = "bottom";
      for (const m of items) {
        ctx.strokeStyle = ctx.fillStyle = m === items[items.length - 1] && this.draft ? "#fde047" : "#4ade80";
        ctx.beginPath();
        if (m.kind === "length") {
          ctx.moveTo(X(m.a), Y(m.a)); ctx.lineTo(X(m.b), Y(m.b));
        } else {
          ctx.ellipse((X(m.a) + X(m.b)) / 2, (Y(m.a) + Y(m.b)) / 2, Math.abs(X(m.b) - X(m.a)) / 2,
            Math.abs(Y(m.b) - Y(m.a)) / 2, 0, 0, 2 * Math.PI);
        }
        ctx.stroke();
        // the label beside the shape's top right, kept inside the canvas
        const lines = m.lines || [m.text], height = 14 * dpr;
        const width = Math.max(...lines.map((t) => ctx.measureText(t).width));
        const x = Math.max(2 * dpr, Math.min(Math.max(X(m.a), X(m.b)) + 4 * dpr, this.canvas.width - width - 4 * dpr));
        const y = Math.max(lines.length * height, Math.min(Y(m.a), Y(m.b)) - 2 * dpr);
        ctx.shadowColor = "#000"; ctx.shadowBlur = 3 * dpr;
        lines.forEach((t, i) => ctx.fillText(t, x, y - (lines.length - 1 - i) * height));
        ctx.shadowBlur = 0;
      }
      ctx.restore();
    }

    exposeMeasurements() {
      // The slice's measurements as data-* attributes (the last one of each kind), for the page and its tests.
      const items = this.measurements(), data = this.el.dataset;
      const last = items[items.length - 1], roi = [...items].reverse().find((m) => m.kind === "ellipse");
      data.measurements = String(items.length);
      data.measurement = last ? last.text : "";
      data.roiMean = roi && roi.n ? String(roi.mean) : "";
      data.roiSd = roi && roi.n ? String(roi.sd) : "";
      data.roiPixels = roi ? String(roi.n) : "";
    }

    // -- the value under the pointer --
    pointAt(clientX, clientY) {
      // The pointer in slice pixel units (column x, row y, not rounded), clamped to the image.
      const rect = this.canvas.getBoundingClientRect(), dpr = this.canvas.width / rect.width, r = this.imageRect();
      const x = ((clientX - rect.left) * dpr - r.x) / r.w * this.series.cols;
      const y = ((clientY - rect.top) * dpr - r.y) / r.h * this.series.rows;
      return { x: Math.max(0, Math.min(this.series.cols, x)), y: Math.max(0, Math.min(this.series.rows, y)) };
    }

    hover(clientX, clientY) {
      // Remember which pixel is under the pointer (null off the image) and show its real value.
      if (!this.ready) return;
      const p = this.pointAt(clientX, clientY), rect = this.canvas.getBoundingClientRect();
      const dpr = this.canvas.width / rect.width, r = this.imageRect();
      const cx = (clientX - rect.left) * dpr, cy = (clientY - rect.top) * dpr;
      const inside = cx >= r.x && cx < r.x + r.w && cy >= r.y && cy < r.y + r.h;
      this.readout = inside ? { x: Math.min(this.series.cols - 1, Math.floor(p.x)), y: Math.min(this.series.rows - 1, Math.floor(p.y)) } : null;
      this.showReadout();
    }

    showReadout() {
      const box = this.el.querySelector(".ov-tr"), at = this.readout;
      if (!at || !this.sliceLoaded()) { box.textContent = ""; this.el.dataset.pixelValue = ""; return; }
      const s = this.series, r = s.rescale, units = valueUnits(s);
      const value = (this.volume.data[this.slice * this.volume.frame + at.y * s.cols + at.x] * r.slope + r.intercept) * units.scale;
      box.textContent = "(" + at.x + ", " + at.y + ") " + formatValue(value) + " " + units.label;
      this.el.dataset.pixelValue = String(value);
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
      c.addEventListener("pointermove", (e) => this.hover(e.clientX, e.clientY));
      c.addEventListener("pointerleave", () => { this.readout = null; this.showReadout(); });
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
      // The hanging protocol: viewport i opens default_series[i]; chosen: the series the reader put in viewport i.
      this.defaults = payload.default_series.map((id) => this.byId.get(id)).filter(Boolean);
      this.chosen = new Map();
      this.measurements = new Map();   // "viewport|series|frame" -> the reader's measurements there (memory only)
      this.tool = "window";
      this.setUpHeatMaps(payload.heat_maps);
      this.buildSeriesList();
      this.bindToolbar();
      this.bindKeys();
      new ResizeObserver(() => this.viewports.forEach((v) => v.resize())).observe(this.grid);
      this.setLayout(Math.max(1, Math.min(4, this.defaults.length || 1)));   // a protocol of 4: the 2x2 grid
      this.setTool("window");
      this.listPresets();
    }

    listPresets() {
      // The help overlay's table of window presets, written from PRESETS (one table, no copy to keep in step).
      const body = document.querySelector("#viewer-help [data-preset-table]");
      if (!body) return;
      body.textContent = "";
      const FAMILIES = { T2: "T2", T1: "T1, fsT1, T1 + contrast", DWI: "DWI", ADC: "ADC",
        dynamic: "dynamic", other: "other" };
      for (const [family, label] of Object.entries(FAMILIES)) {
        const row = body.insertRow(), head = document.createElement("th");
        head.textContent = label;
        row.appendChild(head);
        PRESETS[family].forEach((p, i) => {
          row.insertCell().textContent = (i + 1) + " " + p.name + (p.p ? " (p" + p.p[0] + "–p" + p.p[1] + ")" : "");
        });
      }
    }

    // -- the AI's heat-maps (exam 2 only; static/js/heat_maps.js) --
    setUpHeatMaps(config) {
      // Only where the payload offers them: otherwise no store (so no request can be made), and H does nothing.
      this.heatMapsOn = false;
      this.heatMapOpacity = 0.5;
      this.heatMaps = config && window.HeatMapStore
        ? new window.HeatMapStore(config.series, (handle, entry) => this.heatMapsLoaded(handle, entry)) : null;
      if (!this.heatMaps) return;
      const bar = this.root.querySelector(".heat-legend .heat-bar");
      if (bar && config.legend && config.legend.length) {
        // CSSOM, not a style attribute: the site's CSP allows no inline style
        bar.style.backgroundImage = "linear-gradient(to right, " +
          config.legend.map((s) => s.rgb + " " + Math.round(s.value * 100) + "%").join(", ") + ")";
      }
      const slider = this.root.querySelector('[data-action="heat-map-opacity"]');
      if (slider) this.setHeatMapOpacity(Number(slider.value) / 100);
      this.setHeatMaps(Boolean(config.default_on));
    }

    setHeatMaps(on) {
      if (!this.heatMaps) return;
      if (on) this.heatMaps.forgetFailed();
      this.heatMapsOn = on;
      this.root.dataset.heatMaps = on ? "on" : "off";
      this.root.querySelectorAll('[data-action="heat-maps"]').forEach((b) => b.setAttribute("aria-pressed", String(on)));
      this.root.querySelectorAll(".heat-legend").forEach((el) => { el.hidden = !on; });
      this.viewports.forEach((v) => v.draw());
    }

    toggleHeatMaps() { this.setHeatMaps(!this.heatMapsOn); }

    setHeatMapOpacity(fraction) {
      this.heatMapOpacity = Math.max(0, Math.min(1, fraction));
      const percent = Math.round(this.heatMapOpacity * 100);
      this.root.dataset.heatMapOpacity = String(percent);
      this.root.querySelectorAll('[data-action="heat-map-opacity"]').forEach((slider) => {
        slider.value = String(percent);
        slider.setAttribute("aria-valuetext", percent + " %");
        slider.title = "heat-map opacity: " + percent + " %";
      });
      if (this.heatMapsOn) this.viewports.forEach((v) => v.draw());
    }

    heatMapsLoaded(handle, entry) {
      // A series' maps are in (or could not be had: the button says so until the next try, H off and on again);
      // the viewports showing it draw them.
      this.root.querySelectorAll('[data-action="heat-maps"]').forEach((b) => {
        b.dataset.title = b.dataset.title || b.title;     // the template's
        const failed = entry.state === "failed";
        b.classList.toggle("failed", failed);
        b.title = failed ? "the heat-maps could not be loaded (" + entry.error + "); H off and on tries again" : b.dataset.title;
      });
      this.viewports.forEach((v) => v.series && v.series.id === handle && v.draw());
    }

    // -- layout --
    seriesFor(index) {
      // What viewport `index` shows when it appears (again): the reader's choice for it, else the hanging
      // protocol's, else the first series no viewport shows yet. So 3 -> 1 -> 2 -> 3 gives back what was there.
      if (this.chosen.has(index)) return this.chosen.get(index);
      if (this.defaults[index]) return this.defaults[index];
      const used = new Set(this.viewports.map((v) => v.series && v.series.id));
      for (let i = 0; i < index; i++) { const s = this.chosen.get(i) || this.defaults[i]; if (s) used.add(s.id); }
      return this.series.find((s) => !used.has(s.id)) || this.series[0];
    }

    setLayout(n) {
      // The grid takes its layout class first and the new viewports their places before any is measured: one
      // layout pass and one canvas size each, not one per viewport added (the first-image budget).
      this.grid.className = "viewports layout-" + n;
      const added = [];
      while (this.viewports.length < n) {
        const vp = new Viewport(this, this.viewports.length);
        this.viewports.push(vp);
        this.grid.appendChild(vp.el);
        added.push(vp);
      }
      for (const vp of added) {
        vp.resize();
        const next = this.seriesFor(vp.index);
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
      while (this.viewports.length > n) {
        const gone = this.viewports.pop();
        gone.stopCine();
        gone.loadToken++;                                  // a load still under way shows nothing
        this.grid.removeChild(gone.el);
      }
      this.root.dataset.layout = String(n);
      this.viewports.forEach((v) => v.resize());
      if (!this.active || !this.viewports.includes(this.active)) this.activate(this.viewports[0]);
      this.markList();
    }

    cycleLayout() { this.setLayout(this.viewports.length >= 3 ? 1 : this.viewports.length + 1); }

    activate(vp) {
      if (!vp) return;
      const changed = this.active !== vp;
      this.active = vp;
      this.viewports.forEach((v) => v.el.classList.toggle("active", v === vp));
      this.markList();
      if (changed) { this.viewports.forEach((v) => v.draw()); this.showPresetNames(); }   // reference lines
    }

    activateNext(delta) {
      // The keyboard's way to another viewport (A / Shift+A): the next or previous one becomes active.
      const n = this.viewports.length, i = this.viewports.indexOf(this.active);
      if (n) this.activate(this.viewports[((i + delta) % n + n) % n]);
    }

    referenceMoved(vp) {
      // The active viewport's slice moved: the others redraw its reference line.
      if (vp === this.active) this.viewports.forEach((v) => v !== vp && v.draw());
    }

    // -- tools --
    setTool(tool) {
      // What a left drag does: "window" (window/level), "length" or "ellipse" (measurements).
      this.tool = tool;
      this.root.dataset.tool = tool;
      this.root.querySelectorAll("[data-action^='tool-']").forEach((b) =>
        b.setAttribute("aria-pressed", String(b.dataset.action === "tool-" + tool)));
    }

    showPresetNames() {
      // The preset buttons' tooltips name the active series' presets.
      const vp = this.active, presets = vp && vp.series ? vp.presets() : PRESETS.other;
      this.root.querySelectorAll("[data-action^='preset-']").forEach((b) => {
        const preset = presets[Number(b.dataset.action.slice(7)) - 1];
        if (preset) b.title = "window preset: " + preset.name + " (" + b.dataset.action.slice(7) + ")";
      });
    }

    // -- series --
    buildSeriesList() {
      this.list.innerHTML = "";
      for (const s of this.series) {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.seriesId = String(s.id);
        button.innerHTML = '<span class="thumb"><span class="thumb-wait">not loaded yet</span></span>' +
          '<strong></strong><span class="muted"></span>';
        button.querySelector("strong").textContent = s.code;
        const phases = s.temporal_positions ? new Set(s.temporal_positions).size : 1;
        button.querySelector("span.muted").textContent = (s.plane || "") + " · " +
          (phases > 1 ? s.n_slices / phases + " × " + phases + " phases" : s.n_slices);
        button.addEventListener("click", () => this.showInActive(s));
        li.appendChild(button);
        this.list.appendChild(li);
      }
      if (!this.series.length) this.list.innerHTML = '<li class="muted">No images for this case.</li>';
    }

    drawThumbnail(series, volume) {
      // The series' middle slice (of its first phase) in its list button, once that slice is here anyway: a
      // thumbnail never downloads anything by itself (slow links). Called for the volumes the viewports watch
      // (the loader brings all their frames) and for those preloadAll has completed; others keep the placeholder.
      const button = this.list && this.list.querySelector('button[data-series-id="' + CSS.escape(String(series.id)) + '"]');
      const holder = button && button.querySelector(".thumb");
      if (!holder || !volume || holder.dataset.drawn === "1") return;
      const t = series.temporal_positions, n = series.n_slices;
      const firstPhase = t && t.length === n ? [...Array(n).keys()].filter((i) => t[i] === Math.min(...t)) : [...Array(n).keys()];
      const frame = firstPhase[Math.floor(firstPhase.length / 2)];
      if (!volume.has(frame)) {
        // listen, not frameReady: a waiter would make the loader fetch the frame (and the volume) for the thumbnail
        if (holder.dataset.listening === "1") return;
        holder.dataset.listening = "1";
        const stop = volume.listen(() => {
          if (!volume.has(frame)) return;
          stop();
          this.drawThumbnail(series, volume);
        });
        return;
      }
      const small = document.createElement("canvas"), scale = Math.min(1, 64 / Math.max(series.rows, series.cols));
      const image = document.createElement("canvas");
      image.width = series.cols; image.height = series.rows;
      const ictx = image.getContext("2d"), pixels = ictx.createImageData(series.cols, series.rows);
      const out = new Uint32Array(pixels.data.buffer), r = series.rescale, size = series.rows * series.cols;
      const [low, high] = percentiles(volume.data.subarray(frame * size, (frame + 1) * size), [1, 99.5])
        .map((v) => v * r.slope + r.intercept);
      for (let i = 0; i < size; i++) {
        const value = volume.data[frame * size + i] * r.slope + r.intercept;
        const g = Math.max(0, Math.min(255, Math.round((value - low) / Math.max(high - low, 1e-9) * 255)));
        out[i] = (255 << 24) | (g << 16) | (g << 8) | g;
      }
      ictx.putImageData(pixels, 0, 0);
      const [rowSpacing, colSpacing] = series.pixel_spacing, aspect = (series.rows * rowSpacing) / (series.cols * colSpacing);
      small.width = Math.round(series.cols * scale * 2); small.height = Math.round(small.width * aspect);
      const sctx = small.getContext("2d");
      sctx.imageSmoothingEnabled = true;
      sctx.drawImage(image, 0, 0, small.width, small.height);
      holder.textContent = "";
      holder.appendChild(small);
      holder.dataset.drawn = "1";
    }

    markList() {
      const shown = new Map(this.viewports.map((v) => [v.series && String(v.series.id), v]));
      this.list.querySelectorAll("button").forEach((b) => {
        const vp = shown.get(b.dataset.seriesId);
        b.classList.toggle("shown", Boolean(vp));
        b.classList.toggle("active", Boolean(vp) && vp === this.active);
      });
    }

    showInActive(series) {
      if (!this.active) return;
      this.pendingSwitch = { at: performance.now(), viewport: this.active };
      this.chosen.set(this.active.index, series);
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
      // The thumbnail waits until the frame with the image is painted: it is a full pass over a slice, and
      // nothing else may stand between the opening slice's arrival and its paint (the first-image budget).
      const series = vp.series, volume = vp.volume;
      afterPaint(() => this.drawThumbnail(series, volume));
      this.showPresetNames();
      if (this.timings.firstImage === null) {
        this.timings.firstImage = performance.now();
        performance.mark("viewer-first-image");
        this.root.dataset.firstImage = "1";
        afterPaint(() => this.preloadAll());
      }
      if (this.pendingSwitch && this.pendingSwitch.viewport === vp) {
        this.timings.switches.push(performance.now() - this.pendingSwitch.at);
        this.pendingSwitch = null;
      }
      this.markList();
    }

    onDrawn() { /* hook for pages */ }

    pointerMode(e, vp) {
      // The readers' mouse: drag for window/level (or the measuring tool chosen), middle or shift-drag to pan,
      // right-drag to zoom.
      if (e.button === 0 && !e.shiftKey && this.tool !== "window") return vp.measureDrag(e, this.tool);
      return e.button === 1 || (e.button === 0 && e.shiftKey) ? "pan" : e.button === 2 ? "zoom" : "window";
    }

    preloadAll() {
      // The rest of this case's series, one after the other, then the next case's first ones (HTTP cache).
      const rest = this.series.filter((s) => !this.viewports.some((v) => v.series && v.series.id === s.id));
      let chain = Promise.resolve();
      for (const s of rest) chain = chain.then(() => loadVolume(s).then((v) => this.drawThumbnail(s, v)).catch(() => null));
      // The next case's opening slices first (its first image), then its whole first series (the rest).
      const prefetch = this.payload.prefetch || [], opening = prefetch.filter((url) => url.includes("slices="));
      const get = (urls) => Promise.all(urls.map((url) =>
        fetch(url, { credentials: "same-origin" }).then((r) => r.arrayBuffer()).catch(() => null)));
      chain.then(() => get(opening)).then(() => get(prefetch.filter((url) => !opening.includes(url))));
    }

    // -- toolbar and keys --
    bindToolbar() {
      const on = (action, fn) => this.root.querySelectorAll('[data-action="' + action + '"]').forEach((b) => b.addEventListener("click", fn));
      LAYOUTS.forEach((n) => on("layout-" + n, () => this.setLayout(n)));
      [1, 2, 3, 4, 5].forEach((k) => on("preset-" + k, () => this.active && this.active.applyPreset(k - 1)));
      ["window", "length", "ellipse"].forEach((tool) => on("tool-" + tool, () => this.setTool(tool)));
      on("clear-measurements", () => this.active && this.active.clearMeasurements());
      on("invert", () => this.active && this.active.toggleInvert());
      on("cine", () => this.active && this.active.toggleCine());
      on("phase-previous", () => this.active && this.active.stepPhase(-1));
      on("phase-next", () => this.active && this.active.stepPhase(1));
      on("fit", () => this.active && this.active.fit());
      on("reset-window", () => this.active && this.active.ready && this.active.resetWindow());
      on("fullscreen", () => this.toggleFullscreen());
      on("help", () => this.toggleHelp());
      on("heat-maps", () => this.toggleHeatMaps());
      this.root.querySelectorAll('[data-action="heat-map-opacity"]').forEach((slider) =>
        slider.addEventListener("input", () => this.setHeatMapOpacity(Number(slider.value) / 100)));
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
        const typing = e.target.closest && e.target.closest("input:not([type=radio]):not([type=checkbox]):not([type=range]), textarea, select");
        // A slider (the heat-map's opacity) keeps the keys that move it; the letters still reach the viewer (H).
        const sliding = e.target.matches && e.target.matches("input[type=range]") && SLIDER_KEYS.has(e.key);
        if (e.key === "Escape") { this.toggleHelp(false); return; }
        if (typing || sliding || e.altKey || e.ctrlKey || e.metaKey) return;
        const vp = this.active;
        const preset = (k) => () => vp && vp.applyPreset(k);
        const heatMaps = this.heatMaps ? { h: () => this.toggleHeatMaps(), H: () => this.toggleHeatMaps() } : {};
        const handled = {
          ArrowUp: () => vp && vp.scroll(-1), ArrowDown: () => vp && vp.scroll(1),
          ArrowLeft: () => vp && vp.stepPhase(-1), ArrowRight: () => vp && vp.stepPhase(1),
          Home: () => vp && vp.goToEnd(false), End: () => vp && vp.goToEnd(true),
          PageUp: () => this.stepSeries(-1), PageDown: () => this.stepSeries(1),
          r: () => vp && vp.ready && vp.resetWindow(), z: () => vp && vp.fit(),
          1: preset(0), 2: preset(1), 3: preset(2), 4: preset(3), 5: preset(4),
          i: () => vp && vp.toggleInvert(), c: () => vp && vp.toggleCine(),
          w: () => this.setTool("window"), g: () => this.setTool("length"), e: () => this.setTool("ellipse"),
          Delete: () => vp && vp.clearMeasurements(), Backspace: () => vp && vp.clearMeasurements(),
          a: () => this.activateNext(1), A: () => this.activateNext(-1),
          f: () => this.toggleFullscreen(), v: () => this.cycleLayout(), V: () => this.setLayout(4),
          "?": () => this.toggleHelp(), ...heatMaps,
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
