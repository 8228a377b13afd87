// Evaluation page: once the job finishes while the page is open, reload it (once) to show the results.
(function () {
  "use strict";
  const meta = document.getElementById("evaluation-meta");
  const status = document.getElementById("job-status");
  if (!meta || meta.dataset.status === "done" || !status || status.textContent.trim() === "succeeded") return;
  document.addEventListener("job:update", (event) => {
    if (event.detail && event.detail.status === "succeeded") window.location.reload();
  });
})();
