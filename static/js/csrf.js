// The CSRF token for the pages' fetch() calls, one helper for every script (job.js, the series view, the
// reading viewer): the value of Django's {% csrf_token %} input on the page, "" where the page has none.
window.csrfToken = function csrfToken() {
  "use strict";
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
};
