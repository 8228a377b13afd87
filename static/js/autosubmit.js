// A <select data-autosubmit> submits its form when changed (instead of an inline onchange: the CSP forbids it).
(function () {
  "use strict";
  document.addEventListener("change", (event) => {
    const field = event.target;
    if (field.matches && field.matches("select[data-autosubmit]") && field.form) field.form.submit();
  });
})();
