// Live progress for a job page: polls the job's API until it is finished; cancel and resume buttons.
(function () {
  "use strict";
  const root = document.getElementById("job");
  if (!root) return;
  const $ = (id) => document.getElementById(id);

  // The statuses after which a job does nothing more (jobs.models.JobStatus; "warning": it ran to its end but did
  // not do what was asked, e.g. an import that imported nothing).
  const FINISHED = ["succeeded", "warning", "failed", "cancelled"];
  let sawUnfinished = !FINISHED.includes(root.dataset.status);

  function render(job) {
    const finished = FINISHED.includes(job.status);
    // The job page's outcome (counts, reasons, links) is rendered by the server: show it once the job ends.
    if (!finished) sawUnfinished = true;
    else if (sawUnfinished && "reloadWhenFinished" in root.dataset) { window.location.reload(); return true; }
    $("job-status").textContent = job.display_status;
    $("job-status").className = "job-status status-" + job.status;
    $("job-fill").value = job.percent;
    $("job-count").textContent = job.done + "/" + job.total;
    $("job-percent").textContent = job.percent;
    $("job-step").textContent = job.step;
    $("job-error").textContent = job.error || "";
    $("job-result").textContent = JSON.stringify(job.result, null, 2);
    $("job-cancel").hidden = finished || job.cancel_requested;
    $("job-resume").hidden = !job.can_resume;
    root.dataset.status = job.status;
    document.dispatchEvent(new CustomEvent("job:update", { detail: job }));
    return finished && !job.can_resume;
  }

  async function poll() {
    try {
      const response = await fetch(root.dataset.api, { credentials: "same-origin" });
      if (response.ok && render(await response.json())) return;
    } catch (e) { /* network blip: try again */ }
    setTimeout(poll, 1000);
  }

  async function post(url) {
    const response = await fetch(url, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": window.csrfToken() } });
    const body = await response.json();
    if (!response.ok) { $("job-error").textContent = body.detail || "request failed"; return; }
    render(body);
    poll();
  }

  $("job-cancel").addEventListener("click", () => post(root.dataset.cancel));
  $("job-resume").addEventListener("click", () => post(root.dataset.resume));
  poll();
})();
