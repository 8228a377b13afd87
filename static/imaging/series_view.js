// Series view for coordinators: scroll slices, window/level on the 16-bit data, draw tumour boxes.
// The volume arrives as uint16 little-endian (gzip content-encoded, inflated by the browser) with
// JSON metadata; nothing of the DICOM header reaches the page. No build step, no library.
(function () {
  "use strict";
  const root = document.getElementById("series-viewer");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const canvas = $("series-canvas");
  const ctx = canvas.getContext("2d");
  const state = { meta: null, data: null, slice: 0, center: 0, width: 1, boxes: new Map(), draft: null, drag: null };

  function fail(message) { $("viewer-error").textContent = message; }

  async function load() {
    const metaResponse = await fetch(root.dataset.meta, { credentials: "same-origin" });
    if (!metaResponse.ok) return fail("metadata could not be loaded (" + metaResponse.status + ")");
    const meta = await metaResponse.json();
    const volumeResponse = await fetch(meta.volume_url, { credentials: "same-origin" });
    if (!volumeResponse.ok) return fail("volume could not be loaded (" + volumeResponse.status + ")");
    const buffer = await volumeResponse.arrayBuffer();
    const [frames, rows, cols] = meta.shape;
    if (buffer.byteLength !== frames * rows * cols * 2) return fail("volume size does not match its metadata");
    state.meta = meta;
    state.data = new Uint16Array(buffer);  // browsers are little-endian, like the stored volume
    canvas.width = cols; canvas.height = rows;
    (meta.boxes || []).forEach((b) => state.boxes.set(b.slice_index, b));
    resetWindow();
    const firstBox = Math.min(...state.boxes.keys());
    state.slice = Number.isFinite(firstBox) ? firstBox : Math.floor(frames / 2);
    draw();
  }

  function resetWindow() {
    const w = state.meta.window || { center: 0, width: 1 };
    state.center = w.center; state.width = Math.max(w.width, 1e-6);
  }

  function draw() {
    const meta = state.meta; if (!meta) return;
    const [frames, rows, cols] = meta.shape;
    const slope = (meta.rescale || {}).slope || 1, intercept = (meta.rescale || {}).intercept || 0;
    const low = state.center - state.width / 2, scale = 255 / state.width;
    const image = ctx.createImageData(cols, rows);
    const offset = state.slice * rows * cols;
    for (let i = 0; i < rows * cols; i++) {
      let v = ((state.data[offset + i] * slope + intercept) - low) * scale;
      v = v < 0 ? 0 : v > 255 ? 255 : v;
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    const box = state.draft || state.boxes.get(state.slice);
    if (box) {
      ctx.strokeStyle = state.draft ? "#ffd400" : "#ff3b30";
      ctx.lineWidth = Math.max(1, cols / 256);
      ctx.strokeRect(box.x0 + 0.5, box.y0 + 0.5, box.x1 - box.x0 - 1, box.y1 - box.y0 - 1);
    }
    $("slice-number").textContent = state.slice + 1;
    $("slice-count").textContent = frames;
    const location = (meta.slice_locations || [])[state.slice];
    const phase = (meta.temporal_positions || [])[state.slice];
    $("slice-info").textContent = (location !== undefined ? "position " + location.toFixed(1) + " mm" : "") +
      (phase !== undefined && phase !== null ? " · phase " + phase : "");
    $("window-info").textContent = "W " + state.width.toFixed(0) + " / L " + state.center.toFixed(0);
    const saved = state.boxes.get(state.slice);
    $("box-info").textContent = state.draft ? "new box (not saved)" :
      saved ? "box " + saved.source + ": (" + saved.x0 + ", " + saved.y0 + ")–(" + saved.x1 + ", " + saved.y1 + ")" : "no box on this slice";
    $("save-box").disabled = !state.draft;
    $("delete-box").disabled = !saved || !!state.draft;
    $("copy-box").disabled = !state.boxes.get(state.slice - 1) || !!saved;
  }

  function go(slice) {
    if (!state.meta) return;
    state.slice = Math.max(0, Math.min(state.meta.shape[0] - 1, slice));
    state.draft = null;
    draw();
  }

  function pixel(event) {
    const rect = canvas.getBoundingClientRect();
    const x = Math.floor((event.clientX - rect.left) / rect.width * canvas.width);
    const y = Math.floor((event.clientY - rect.top) / rect.height * canvas.height);
    return { x: Math.max(0, Math.min(canvas.width, x)), y: Math.max(0, Math.min(canvas.height, y)) };
  }

  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("mousedown", (event) => {
    if (!state.meta) return;
    const p = pixel(event);
    state.drag = { mode: event.button === 2 || event.shiftKey ? "window" : "box", start: p,
      client: { x: event.clientX, y: event.clientY }, center: state.center, width: state.width };
  });
  window.addEventListener("mousemove", (event) => {
    const drag = state.drag; if (!drag) return;
    if (drag.mode === "window") {
      const range = ((state.meta.value_range || [0, 4096])[1] - (state.meta.value_range || [0, 4096])[0]) || 1;
      state.width = Math.max(1, drag.width + (event.clientX - drag.client.x) * range / 500);
      state.center = drag.center + (event.clientY - drag.client.y) * range / 500;
    } else {
      const p = pixel(event);
      state.draft = { x0: Math.min(drag.start.x, p.x), y0: Math.min(drag.start.y, p.y),
        x1: Math.max(drag.start.x, p.x), y1: Math.max(drag.start.y, p.y) };
    }
    draw();
  });
  window.addEventListener("mouseup", () => {
    if (state.drag && state.draft && (state.draft.x1 - state.draft.x0 < 2 || state.draft.y1 - state.draft.y0 < 2)) state.draft = null;
    state.drag = null; draw();
  });
  canvas.addEventListener("wheel", (event) => { event.preventDefault(); go(state.slice + (event.deltaY > 0 ? 1 : -1)); }, { passive: false });
  document.addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT" || event.target.tagName === "TEXTAREA") return;
    const keys = { ArrowUp: -1, ArrowDown: 1 };
    if (event.key in keys) { event.preventDefault(); go(state.slice + keys[event.key]); }
    else if (event.key === "Home") go(0);
    else if (event.key === "End") go(Infinity);
    else if (event.key === "Escape") { state.draft = null; draw(); }
  });
  $("prev-slice").addEventListener("click", () => go(state.slice - 1));
  $("next-slice").addEventListener("click", () => go(state.slice + 1));
  $("reset-window").addEventListener("click", () => { resetWindow(); draw(); });

  async function send(method, body, query) {
    const response = await fetch(root.dataset.boxes + (query || ""), {
      method, credentials: "same-origin",
      headers: { "X-CSRFToken": window.csrfToken(), "Content-Type": "application/json", Accept: "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!response.ok) {
      const detail = await response.json().catch(() => ({}));
      fail("could not save: " + JSON.stringify(detail));
      return null;
    }
    fail("");
    return response.status === 204 ? {} : response.json();
  }

  function refreshList() {
    const list = $("box-list"); list.textContent = "";
    [...state.boxes.values()].sort((a, b) => a.slice_index - b.slice_index).forEach((b) => {
      const li = document.createElement("li");
      li.dataset.slice = b.slice_index;
      li.textContent = "slice " + (b.slice_index + 1) + ": (" + b.x0 + ", " + b.y0 + ")–(" + b.x1 + ", " + b.y1 + ") " + b.source;
      li.addEventListener("click", () => go(b.slice_index));
      list.appendChild(li);
    });
  }

  $("save-box").addEventListener("click", async () => {
    if (!state.draft) return;
    const saved = await send("POST", { slice_index: state.slice, ...state.draft });
    if (saved) { state.boxes.set(state.slice, saved); state.draft = null; refreshList(); draw(); }
  });
  $("delete-box").addEventListener("click", async () => {
    if (await send("DELETE", null, "?slice_index=" + state.slice)) { state.boxes.delete(state.slice); refreshList(); draw(); }
  });
  $("copy-box").addEventListener("click", () => {
    const previous = state.boxes.get(state.slice - 1);
    if (previous) { state.draft = { x0: previous.x0, y0: previous.y0, x1: previous.x1, y1: previous.y1 }; draw(); }
  });
  document.querySelectorAll("#box-list li[data-slice]").forEach((li) => li.addEventListener("click", () => go(Number(li.dataset.slice))));
  load().catch((error) => fail("viewer error: " + error));
})();
