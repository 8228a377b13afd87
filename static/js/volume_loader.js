// Progressive volume loading for the series viewer (static/js/viewer.js; docs/reader_study_loading.md).
//
// A series is uint16 little-endian, frames x rows x cols. The server answers `?slices=FIRST-LAST` with just those
// frames (gzip on the wire, cut from the stored file without inflating it). Each viewport that shows a volume
// *watches* it at its current slice; one scheduler for the whole page decides what to ask for next:
//   1. the current slice of every watching viewport, alone (one frame: the first image and a jump to a slice
//      not yet loaded come first, and nothing else is started while one of them is missing);
//   2. then the rest of the watched volumes, nearest first, outward from each current slice, the slices ahead
//      in the direction of scrolling before those behind, in runs within fixed blocks of about 2 MiB, so that
//      the same case asks for the same URLs again (each is cached as immutable); while a viewport scrolls, its
//      volume (and those of the viewports that follow it) come before those of viewports left where they are;
//   3. only when no watched volume misses anything: the volumes asked for as a whole (Viewer.preloadAll), one
//      block at a time, from their middle outward.
// Bodies are read as streams: a frame is drawable as soon as its last byte has arrived, not its whole request.
// A volume the previous page prefetched whole into the HTTP cache is taken from there (`only-if-cached`).
//
// Public: window.VolumeLoader = { open(series), complete(series, onProgress), mode }.
//   open(series) -> the page's Volume for series.volume_url (shared; nothing is fetched until it is watched).
//   Volume: series, data (Uint16Array of every frame; frames not yet loaded are 0), frame (rows x cols), normal,
//   positions, max, count (frames loaded), has(i), watch(owner, slice, active), release(owner),
//   frameReady(i, onProgress) -> Promise, listen(fn(index)) -> unlisten, complete (bool).
//   complete(series) -> Promise<Volume> once every frame is in (queued behind everything watched).
//   mode: "progressive" (the default) or "whole" (one request per volume, nothing drawn before its last byte:
//   the loading before progressive loading, kept as the benchmark's baseline; set window.volumeLoaderMode
//   before this file loads).
(function () {
  "use strict";

  const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  const BLOCK_BYTES = 2 * 1024 * 1024;  // raw bytes per block request (≈ 1.3 MB of gzip for 512² MR)
  const SLOTS = 2;                      // requests in flight for watched volumes (+1 for a current slice)
  const MAX_FAILURES = 3;               // failed requests before a volume reports its error
  const PROBE_MS = 150;                 // the longest wait for an HTTP cache lookup
  const MOVING_MS = 1500;               // a viewport scrolled within this long counts as scrolling
  const volumes = new Map();            // volume url -> Volume
  const inFlight = { watched: 0, background: 0 };
  let backgroundOrder = 0;
  // The page's preloaded opening slice (templates/reader_study/reading.html), asked for and read whole as soon
  // as this file runs, before viewer.js has even compiled: the first request for it takes the bytes from here.
  const early = new Map();              // absolute url -> Promise<{ok, status, buffer}>
  function absolute(url) { return new URL(url, window.location.href).href; }
  if (window.volumeLoaderMode !== "whole") {
    document.querySelectorAll('link[rel="preload"][as="fetch"]').forEach((link) => {
      early.set(link.href, fetch(link.href, { credentials: "same-origin" }).then(async (r) =>
        ({ ok: r.ok, status: r.status, buffer: r.ok ? await r.arrayBuffer() : null })).catch(() => null));
    });
  }

  function normalOf(o) {
    const n = [o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]];
    const len = Math.hypot(n[0], n[1], n[2]) || 1;
    return [n[0] / len, n[1] / len, n[2] / len];
  }

  function rangeUrl(url, first, last) {
    return url + (url.includes("?") ? "&" : "?") + "slices=" + first + "-" + last;
  }

  class Volume {
    constructor(series) {
      this.series = series;
      this.url = series.volume_url;
      this.n = series.n_slices;
      this.frame = series.rows * series.cols;
      this.frameBytes = this.frame * 2;
      this.bytes = new Uint8Array(this.n * this.frameBytes);
      this.data = LITTLE_ENDIAN ? new Uint16Array(this.bytes.buffer) : new Uint16Array(this.n * this.frame);
      this.normal = normalOf(series.orientation);
      this.positions = series.slice_positions.length === series.n_slices ? series.slice_positions : null;
      this.block = Math.max(1, Math.floor(BLOCK_BYTES / this.frameBytes));
      this.loaded = new Uint8Array(this.n);
      this.requested = new Uint8Array(this.n);
      this.count = 0;
      this.watchers = new Map();        // owner -> { slice, dir, active }
      this.listeners = new Set();
      this.waiters = [];                // { index, resolve, reject, onProgress }
      this.completions = [];            // { resolve, reject, onProgress }
      this.background = 0;              // > 0: asked for whole (its order in the queue)
      this.probed = LOADER.mode !== "progressive";
      this.failures = 0;
      this.error = null;
      this.maxCache = { count: -1, value: 0 };
    }

    get complete() { return this.count === this.n; }

    has(i) { return this.loaded[i] === 1; }

    get max() {
      // The largest stored value: from the metadata's real-value range when present, else over loaded frames.
      const r = this.series.rescale, range = this.series.value_range;
      if (range && r.slope > 0) return Math.min(65535, Math.ceil((range[1] - r.intercept) / r.slope));
      if (this.maxCache.count !== this.count) {
        let max = 0;
        for (let f = 0; f < this.n; f++) {
          if (!this.loaded[f]) continue;
          for (let i = f * this.frame, end = i + this.frame; i < end; i++) if (this.data[i] > max) max = this.data[i];
        }
        this.maxCache = { count: this.count, value: max };
      }
      return this.maxCache.value;
    }

    watch(owner, slice, active) {
      const w = this.watchers.get(owner), moved = Boolean(w) && slice !== w.slice;
      this.watchers.set(owner, {
        slice, active: Boolean(active),
        dir: moved ? Math.sign(slice - w.slice) : (w ? w.dir : 0),
        movedAt: moved ? performance.now() : (w ? w.movedAt : -Infinity),
      });
      if (!w || moved) schedule();
    }

    release(owner) { this.watchers.delete(owner); }

    listen(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

    frameReady(index, onProgress) {
      if (this.has(index)) return Promise.resolve(this);
      if (this.error) return Promise.reject(this.error);
      return new Promise((resolve, reject) => { this.waiters.push({ index, resolve, reject, onProgress }); schedule(); });
    }

    whenComplete(onProgress) {
      if (this.complete) return Promise.resolve(this);
      if (this.error) return Promise.reject(this.error);
      if (!this.background) this.background = ++backgroundOrder;
      return new Promise((resolve, reject) => { this.completions.push({ resolve, reject, onProgress }); schedule(); });
    }

    // -- filled by the scheduler --
    arrived(index) {
      if (this.loaded[index]) return;
      if (!LITTLE_ENDIAN) {
        const view = new DataView(this.bytes.buffer, index * this.frameBytes, this.frameBytes);
        for (let i = 0; i < this.frame; i++) this.data[index * this.frame + i] = view.getUint16(2 * i, true);
      }
      this.loaded[index] = 1;
      this.count++;
      this.waiters = this.waiters.filter((w) => (w.index === index ? (w.resolve(this), false) : true));
      this.listeners.forEach((fn) => fn(index));
      if (this.complete) { this.completions.forEach((c) => c.resolve(this)); this.completions = []; }
      else this.completions.forEach((c) => c.onProgress && c.onProgress(this.count / this.n));
    }

    progress(index, fraction) {
      for (const w of this.waiters) if (w.onProgress && (w.index === index || index < 0)) w.onProgress(fraction);
    }

    failed(err, first, last) {
      for (let i = first; i <= last; i++) if (!this.loaded[i]) this.requested[i] = 0;
      this.failures++;
      if (this.failures < MAX_FAILURES && !err.permanent) return;
      this.error = err;
      this.waiters.forEach((w) => w.reject(err));
      this.completions.forEach((c) => c.reject(err));
      this.waiters = []; this.completions = [];
      volumes.delete(this.url);                    // a later open() starts afresh
    }
  }

  // ---- the scheduler ------------------------------------------------------------------------------------
  let scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(() => { scheduled = false; pump(); });
  }

  function pump() {
    for (;;) {
      const job = nextWatchedJob();
      if (!job) break;
      run(job, "watched");
    }
    if (inFlight.watched === 0 && inFlight.background === 0) {
      const job = nextBackgroundJob();
      if (job) run(job, "background");
    }
  }

  function free(v, i) { return !v.loaded[i] && !v.requested[i]; }

  function runAround(v, i) {
    // The run of frames not yet asked for around i, within i's block (fixed blocks: the same URLs next time).
    const lo = Math.floor(i / v.block) * v.block, hi = Math.min(v.n - 1, lo + v.block - 1);
    let first = i, last = i;
    while (first - 1 >= lo && free(v, first - 1)) first--;
    while (last + 1 <= hi && free(v, last + 1)) last++;
    return { v, first, last };
  }

  function nextWatchedJob() {
    const watched = [...volumes.values()].filter((v) => !v.error && !v.complete && (v.watchers.size || v.waiters.length));
    if (!watched.length) return null;
    const total = inFlight.watched;
    if (LOADER.mode === "whole") {
      const v = watched.find((x) => !x.requested[0]);
      return v && total < SLOTS ? { v, whole: true } : null;
    }
    // 1. current slices (and frames a caller waits for), alone; not held up by the cache lookup below (the
    //    opening slice is preloaded by the page, or prefetched by the previous one: the request finds it)
    let currentMissing = false;
    for (const v of watched) {
      const wanted = [...v.watchers.values()].sort((a, b) => b.active - a.active).map((w) => w.slice)
        .concat(v.waiters.map((w) => w.index));
      for (const i of wanted) {
        if (v.loaded[i]) continue;
        currentMissing = true;
        if (!v.requested[i] && total < SLOTS + 1) return { v, first: i, last: i };
      }
    }
    // 0. then a volume not yet looked up in the HTTP cache (the next-case prefetch put whole volumes there)
    const unprobed = watched.find((v) => !v.probed);
    if (unprobed) return total < SLOTS + 1 ? { v: unprobed, probe: true } : null;
    if (currentMissing || total >= SLOTS) return null;
    // 2. the nearest missing frame of any watched volume, ahead of the scrolling before behind it; while a
    //    viewport scrolls (and those that follow it), a viewport left where it is waits
    const now = performance.now(), isMoving = (w) => now - w.movedAt < MOVING_MS;
    const anyMoving = watched.some((v) => [...v.watchers.values()].some(isMoving));
    let best = null;
    for (const v of watched) {
      for (const w of v.watchers.values()) {
        const idle = anyMoving && !isMoving(w) ? 4 * v.n : 0;
        for (let i = 0; i < v.n; i++) {
          if (!free(v, i)) continue;
          let d = Math.abs(i - w.slice);
          if (w.dir && Math.sign(i - w.slice) === -w.dir) d = 2 * d + 1;
          const score = 2 * d + (w.active ? 0 : 1) + idle;
          if (!best || score < best.score) best = { v, i, score };
        }
      }
    }
    return best ? runAround(best.v, best.i) : null;
  }

  function nextBackgroundJob() {
    const queue = [...volumes.values()].filter((v) => v.background && !v.error && !v.complete)
      .sort((a, b) => a.background - b.background);
    const v = queue.find((x) => !x.probed || x.requested.some((r, i) => !r && !x.loaded[i]));
    if (!v) return null;
    if (!v.probed) return { v, probe: true };
    if (LOADER.mode === "whole") return v.requested[0] ? null : { v, whole: true };
    const middle = Math.floor(v.n / 2);
    for (let d = 0; d < v.n; d++) {
      for (const i of [middle + d, middle - d - 1]) if (i >= 0 && i < v.n && free(v, i)) return runAround(v, i);
    }
    return null;
  }

  async function run(job, kind) {
    const v = job.v;
    inFlight[kind]++;
    let first = job.first, last = job.last;
    try {
      let response;
      if (job.probe) {
        v.probed = true;
        // A cache lookup answers at once; one that waits is queued behind another download of the same URL
        // (the cache's lock): give up on it rather than hold a request slot.
        const giveUp = new AbortController(), timer = setTimeout(() => giveUp.abort(), PROBE_MS);
        response = await fetch(v.url, { cache: "only-if-cached", mode: "same-origin", credentials: "same-origin",
          signal: giveUp.signal }).catch(() => null);
        clearTimeout(timer);
        if (!response || !response.ok) return;                // not in the HTTP cache: ask for ranges
        first = 0; last = v.n - 1;                             // in it: every frame from there (those that came
        for (let i = first; i <= last; i++) v.requested[i] = 1;  // by a range meanwhile are skipped on arrival)
      } else {
        if (job.whole) { first = 0; last = v.n - 1; }
        for (let i = first; i <= last; i++) v.requested[i] = 1;
        const url = job.whole ? v.url : rangeUrl(v.url, first, last), taken = early.get(absolute(url));
        early.delete(absolute(url));
        response = (taken && await taken) || await fetch(url, { credentials: "same-origin" });
      }
      if (!response.ok) {
        const err = new Error("series " + v.series.code + ": the server answered " + response.status);
        err.permanent = response.status >= 400 && response.status < 500;
        throw err;
      }
      await readFrames(v, response, first, last, Boolean(job.whole));
    } catch (err) {
      v.failed(err instanceof Error ? err : new Error(String(err)), first, last);
    } finally {
      inFlight[kind]--;
      schedule();
    }
  }

  async function readFrames(v, response, first, last, atTheEnd) {
    // Copy the body into the volume as it arrives; each frame is announced once its last byte is in (or, for the
    // baseline "whole" mode, every frame once the last byte of the volume is in).
    const start = first * v.frameBytes, expected = (last - first + 1) * v.frameBytes;
    let offset = 0, announced = first;
    const take = (chunk) => {
      if (offset + chunk.length > expected) throw new Error("series " + v.series.code + ": more data than its shape");
      v.bytes.set(chunk, start + offset);
      offset += chunk.length;
      if (atTheEnd) { v.progress(-1, offset / expected); return; }
      const complete = first + Math.floor(offset / v.frameBytes);
      while (announced < complete) v.arrived(announced++);
      if (announced <= last) v.progress(announced, (offset % v.frameBytes) / v.frameBytes);
    };
    if (response.buffer) {
      take(new Uint8Array(response.buffer));                 // the early fetch of the opening slice, read whole
    } else if (response.body) {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        take(value);
      }
    } else {
      take(new Uint8Array(await response.arrayBuffer()));
    }
    if (offset !== expected) {
      throw new Error("series " + v.series.code + ": " + offset + " bytes, expected " + expected);
    }
    if (atTheEnd) for (let i = first; i <= last; i++) v.arrived(i);
  }

  function open(series) {
    let v = volumes.get(series.volume_url);
    if (!v) { v = new Volume(series); volumes.set(series.volume_url, v); }
    return v;
  }

  const LOADER = {
    mode: window.volumeLoaderMode === "whole" ? "whole" : "progressive",
    open,
    complete: (series, onProgress) => open(series).whenComplete(onProgress),
  };
  window.VolumeLoader = LOADER;
})();
