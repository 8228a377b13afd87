// The coordinator's series page: the shared viewer (static/js/viewer.js: loading, drawing, scrolling,
// window/level, zoom) showing one series, and what only coordinators do here: draw, copy, save and delete
// the tumour box of a slice, the list of boxes, and the slice's position and phase. The metadata (with the
// boxes) comes from the imaging API (data-meta), the boxes are written to data-boxes. No build step.
//
// Mouse: drag draws a box; shift- or right-drag window/level; middle-drag pans; Ctrl+wheel zooms.
// Keys (the viewer's): wheel, ↑/↓, Home/End scroll; R resets window/level; Z fits. Escape drops the new box.
(function () {
  "use strict";
  const root = document.getElementById("series-viewer");
  if (!root || !window.ReaderViewer) return;
  const $ = (id) => document.getElementById(id);
  const boxes = new Map();   // slice index -> saved box {slice_index, x0, y0, x1, y1, source}
  let draft = null;          // a box drawn or copied on one slice, not saved yet: {slice, x0, y0, x1, y1}
  let meta = null;
  let viewer = null;

  function fail(message) { $("viewer-error").textContent = message; }

  function seriesOf(m) {
    // The imaging API's metadata in the shape the viewer reads (the readers' payload has the same fields).
    return {
      id: m.id, code: m.sequence_code, plane: m.plane, n_slices: m.n_slices, rows: m.rows, cols: m.cols,
      pixel_spacing: m.pixel_spacing || [1, 1], slice_positions: m.slice_positions || [],
      orientation: m.orientation || [1, 0, 0, 0, 1, 0], rescale: m.rescale || { slope: 1, intercept: 0 },
      window: m.window || null, value_range: m.value_range || null,
      temporal_positions: m.temporal_positions || null, slice_thickness: m.slice_thickness || null,
      volume_url: m.volume_url,
    };
  }

  function boxDrag(vp, event) {
    const start = vp.pixelAt(event.clientX, event.clientY);
    return {
      move(m) {
        const p = vp.pixelAt(m.clientX, m.clientY);
        draft = { slice: vp.slice, x0: Math.min(start.x, p.x), y0: Math.min(start.y, p.y),
          x1: Math.max(start.x, p.x), y1: Math.max(start.y, p.y) };
        vp.draw();
      },
      up() {
        if (draft && (draft.x1 - draft.x0 < 2 || draft.y1 - draft.y0 < 2)) draft = null;
        vp.draw();
      },
    };
  }

  function drawBox(vp) {
    const box = draft || boxes.get(vp.slice);
    if (!box) return;
    const r = vp.imageRect(), sx = r.w / vp.series.cols, sy = r.h / vp.series.rows, ctx = vp.ctx;
    ctx.strokeStyle = draft ? "#ffd400" : "#ff3b30";
    ctx.lineWidth = 1.5 * (window.devicePixelRatio || 1);
    ctx.strokeRect(r.x + box.x0 * sx, r.y + box.y0 * sy, (box.x1 - box.x0) * sx, (box.y1 - box.y0) * sy);
  }

  function showState(vp) {
    const slice = vp.slice;
    $("slice-number").textContent = slice + 1;
    $("slice-count").textContent = vp.series.n_slices;
    const location = (meta.slice_locations || [])[slice];
    const phase = (meta.temporal_positions || [])[slice];
    $("slice-info").textContent = (location !== undefined && location !== null ? "position " + location.toFixed(1) + " mm" : "") +
      (phase !== undefined && phase !== null ? " · phase " + phase : "");
    const saved = boxes.get(slice);
    $("box-info").textContent = draft ? "new box (not saved)" :
      saved ? "box " + saved.source + ": (" + saved.x0 + ", " + saved.y0 + ")–(" + saved.x1 + ", " + saved.y1 + ")" : "no box on this slice";
    $("save-box").disabled = !draft;
    $("delete-box").disabled = !saved || !!draft;
    $("copy-box").disabled = !boxes.get(slice - 1) || !!saved;
    $("copy-box-all").disabled = !saved || !!draft;
  }

  // The viewer, with one viewport and no series list; a left drag draws a box instead of window/level.
  class SeriesViewer extends window.ReaderViewer.Viewer {
    buildSeriesList() {}
    markList() {}
    stepSeries() {}
    cycleLayout() {}

    pointerMode(event, vp) {
      if (event.button === 2 || (event.button === 0 && event.shiftKey)) return "window";
      if (event.button === 1) return "pan";
      return event.button === 0 ? boxDrag(vp, event) : null;
    }

    onSeriesShown(vp) {
      super.onSeriesShown(vp);
      const first = Math.min(...boxes.keys());
      if (Number.isFinite(first)) vp.setSlice(first, false);   // open on the first boxed slice
    }

    onDrawn(vp) {
      if (draft && draft.slice !== vp.slice) draft = null;     // a new box lives on its own slice only
      drawBox(vp);
      showState(vp);
    }
  }

  function redraw() { if (viewer && viewer.active) viewer.active.draw(); }

  async function send(method, body, query, url) {
    const reason = $("correction-reason");  // only on a frozen case: a box change there is a correction
    if (reason) body = { ...(body || {}), reason: reason.value };
    const response = await fetch((url || root.dataset.boxes) + (query || ""), {
      method, credentials: "same-origin",
      headers: { "X-CSRFToken": window.csrfToken(), "Content-Type": "application/json", Accept: "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) {
      const detail = await response.json().catch(() => ({}));
      const text = Object.values(detail).flat().join(" ");
      fail("could not save: " + (text || response.status + " " + response.statusText));
      return null;
    }
    fail("");
    return response.status === 204 ? {} : response.json();
  }

  function refreshList() {
    const list = $("box-list"); list.textContent = "";
    [...boxes.values()].sort((a, b) => a.slice_index - b.slice_index).forEach((b) => {
      const li = document.createElement("li");
      li.dataset.slice = b.slice_index;
      li.textContent = "slice " + (b.slice_index + 1) + ": (" + b.x0 + ", " + b.y0 + ")–(" + b.x1 + ", " + b.y1 + ") " + b.source;
      list.appendChild(li);
    });
    if (!boxes.size) list.innerHTML = '<li class="muted">none yet</li>';
  }

  const active = () => (viewer && viewer.active && viewer.active.ready ? viewer.active : null);
  $("prev-slice").addEventListener("click", () => { const vp = active(); if (vp) vp.scroll(-1); });
  $("next-slice").addEventListener("click", () => { const vp = active(); if (vp) vp.scroll(1); });
  $("box-list").addEventListener("click", (event) => {
    const li = event.target.closest("li[data-slice]"), vp = active();
    if (li && vp) vp.setSlice(Number(li.dataset.slice));
  });
  $("save-box").addEventListener("click", async () => {
    if (!draft) return;
    const { slice, ...box } = draft;
    const saved = await send("POST", { slice_index: slice, ...box });
    if (saved) { boxes.set(saved.slice_index, saved); draft = null; refreshList(); redraw(); }
  });
  $("delete-box").addEventListener("click", async () => {
    const vp = active(); if (!vp) return;
    const slice = vp.slice;
    if (await send("DELETE", null, "?slice_index=" + slice)) { boxes.delete(slice); refreshList(); redraw(); }
  });
  $("copy-box").addEventListener("click", () => {
    const vp = active(); if (!vp) return;
    const previous = boxes.get(vp.slice - 1);
    if (previous) { draft = { slice: vp.slice, x0: previous.x0, y0: previous.y0, x1: previous.x1, y1: previous.y1 }; redraw(); }
  });
  $("copy-box-all").addEventListener("click", async () => {
    // METHOD §3: the box of this slice onto the series' tumour slices (first to last boxed slice) without one
    const vp = active(); if (!vp || !boxes.get(vp.slice)) return;
    const copied = await send("POST", {}, "?slice_index=" + vp.slice, root.dataset.boxesCopy);
    if (copied) { copied.forEach((b) => boxes.set(b.slice_index, b)); refreshList(); redraw(); }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && draft && !event.target.closest("input, select, textarea")) { draft = null; redraw(); }
  });

  async function start() {
    const response = await fetch(root.dataset.meta, { credentials: "same-origin" });
    if (!response.ok) return fail("metadata could not be loaded (" + response.status + ")");
    meta = await response.json();
    (meta.boxes || []).forEach((b) => boxes.set(b.slice_index, b));
    const series = seriesOf(meta);
    viewer = new SeriesViewer(root, { series: [series], default_series: [series.id] });
    window.seriesPage = { viewer, boxes };
  }
  start().catch((error) => fail("viewer error: " + error));
})();
