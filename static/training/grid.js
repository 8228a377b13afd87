// Refreshes the repeat × fold grid of a training run from its API while the job is running.
(function () {
  "use strict";
  const table = document.getElementById("model-grid");
  if (!table) return;
  async function refresh() {
    const response = await fetch(table.dataset.api, { credentials: "same-origin" });
    if (!response.ok) return;
    const run = await response.json();
    for (const row of run.grid) {
      for (const cell of row.cells) {
        const td = table.querySelector(`td[data-pk="${cell.pk}"]`);
        if (!td) continue;
        td.className = "model-" + cell.status;
        td.querySelector("a").textContent = cell.status;
        const auc = cell.auc === null || cell.auc === undefined ? "" : " · AUC " + cell.auc.toFixed(3);
        td.querySelector("small").textContent = `${cell.epochs_done}/${run.epochs}${auc}`;
      }
    }
  }
  document.addEventListener("job:update", refresh);
})();
