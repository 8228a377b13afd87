// The reading page of every task (exam 1, exam 2, descriptors): start the viewer, the active-time counter and
// the answer form; the form's data-kind says which answer the task takes.
//
// Keys (besides the viewer's): S sarcoma, L leiomyoma, + / - confidence by 5, N the note,
// Ctrl+Enter submit and next. For descriptors: D degeneration yes/no, M irregular margin yes/no.
(function () {
  "use strict";
  const root = document.getElementById("reading");
  const dataNode = document.getElementById("reading-data");
  if (!root || !dataNode) return;
  const { Viewer, ActiveTimer, postJSON } = window.ReaderViewer;
  const payload = JSON.parse(dataNode.textContent);
  const viewer = new Viewer(root, payload);
  const timer = new ActiveTimer(payload.urls.time);
  window.readingPage = { viewer, timer, payload };

  const form = document.getElementById("answer-form");
  const status = document.getElementById("answer-status");
  // the button sits outside the form's scrolling part (always on screen) and names the form with form="…"
  const submitButton = document.getElementById("submit-next");
  const kind = form.dataset.kind;   // "read" or "descriptor"

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  // ---- confidence slider and number stay in step; unset until the reader sets it ------------------------
  const range = form.querySelector("input[name=confidence_range]");
  const number = form.querySelector("input[name=confidence]");
  function setConfidence(value) {
    if (!number) return;
    const v = Math.max(0, Math.min(100, Math.round(Number(value))));
    number.value = String(v);
    range.value = String(v);
    range.classList.remove("unset");
  }
  if (range) {
    range.addEventListener("input", () => setConfidence(range.value));
    number.addEventListener("input", () => { if (number.value !== "") setConfidence(number.value); });
  }

  function setRadio(name, value) {
    const input = form.querySelector("input[name=" + name + '][value="' + value + '"]');
    if (input) input.checked = true;
  }

  function radio(name) {
    const checked = form.querySelector("input[name=" + name + "]:checked");
    return checked ? checked.value : null;
  }

  // ---- each task's own answer: its saved value, how the form shows and reads it, its keys ----------------
  const note = form.querySelector("textarea[name=note]");
  const toggle = (name) => setRadio(name, radio(name) === "yes" ? "no" : "yes");
  const nudge = (step) => setConfidence((number.value === "" ? 50 : Number(number.value)) + step);
  const ANSWERS = {
    read: {
      saved: payload.read,
      show(read) {
        setRadio("call", read.call);
        setConfidence(read.confidence);
        note.value = read.note || "";
        return "Answered (you can change it until you finish the exam).";
      },
      value() {
        const call = radio("call");
        if (!call) throw new Error("choose sarcoma or leiomyoma (S / L)");
        if (number.value === "") throw new Error("set your confidence that this is a sarcoma (0-100)");
        return { call, confidence: Number(number.value), note: note.value };
      },
      keys: {
        s: () => setRadio("call", "sarcoma"), l: () => setRadio("call", "leiomyoma"),
        "+": () => nudge(5), "=": () => nudge(5), "-": () => nudge(-5), n: () => note.focus(),
      },
    },
    descriptor: {
      saved: payload.score,
      show(score) {
        setRadio("degeneration", score.degeneration ? "yes" : "no");
        setRadio("irregular_margin", score.irregular_margin ? "yes" : "no");
        return "Scored (you can change it).";
      },
      value() {
        const degeneration = radio("degeneration"), margin = radio("irregular_margin");
        if (!degeneration || !margin) throw new Error("answer both: degeneration and irregular margin");
        return { degeneration: degeneration === "yes", irregular_margin: margin === "yes" };
      },
      keys: { d: () => toggle("degeneration"), m: () => toggle("irregular_margin") },
    },
  };
  const task = ANSWERS[kind];
  if (task.saved) say(task.show(task.saved));

  let sending = false;
  async function submit() {
    if (sending) return;                       // a double click sends once (and the server is safe anyway)
    let body;
    try { body = task.value(); } catch (err) { say(err.message, true); return; }
    sending = true;
    submitButton.disabled = true;
    const seconds = timer.take();
    body.active_seconds = Math.round(seconds * 10) / 10;
    say("Saving…");
    try {
      const result = await postJSON(payload.urls.submit, body);
      say("Saved.");
      root.dataset.saved = "1";
      const next = result.next_unread;
      window.location.assign(next ? payload.urls.page.replace("{id}", next) : payload.urls.worklist);
    } catch (err) {
      timer.giveBack(seconds);
      say("Not saved: " + err.message, true);
      sending = false;
      submitButton.disabled = false;
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });

  // Keyboard use of the answer panel: the arrow, page and Home/End keys scroll its scrolling part (the AI panel)
  // and move between the call's radio buttons, as they do anywhere else, instead of reaching the viewer.
  const NAVIGATION_KEYS = new Set(["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "PageUp", "PageDown",
    "Home", "End", " "]);
  const panel = root.querySelector(".answer-panel");
  if (panel) {
    panel.addEventListener("keydown", (e) => {
      const own = e.target.matches(".answer-scroll, .answer-scroll *, input[type=radio]");
      if (own && NAVIGATION_KEYS.has(e.key)) e.stopPropagation();
    });
  }

  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); return; }
    if (e.target.closest("input[type=number], input[type=text], textarea, select") || e.altKey || e.ctrlKey || e.metaKey) return;
    const action = task.keys[e.key.toLowerCase()];
    if (action) { e.preventDefault(); action(); }
  });
})();
