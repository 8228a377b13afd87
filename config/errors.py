"""Server-error pages that stay honest and useful in production (``handler500`` in config/urls.py).

A database that is restarting or unreachable is not a bug in the request: the reader's submit can simply be
sent again. Django turns every uncaught exception into a 500; this handler looks at the exception being
handled (``sys.exc_info()``, set while Django calls it) and answers a lost database connection with **503
Service Unavailable**, a ``Retry-After`` header and a message that says to retry — JSON under ``/api/``,
a plain page elsewhere — so the browser and API clients can retry safely: a write either committed before the
error (and the client was answered) or did not happen at all (services write inside transactions).

403 and 404 (``handler403``, ``handler404``) are ``core.views.permission_denied`` and ``core.views.not_found``:
pages with navigation, and DRF's ``{"detail": ...}`` under ``/api/``.

Both 500/503 pages are self-contained: no database, no session, no static file, since either may be what failed.
Nothing of the exception reaches the response (its text can quote SQL); the traceback goes to the log.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader

from core.views import wants_json

RETRY_AFTER_S = 5
UNAVAILABLE = "The database is temporarily unavailable; nothing was saved by this request. Retry in a few seconds."
SERVER_ERROR = "Server error: the request failed and was logged for the administrators."


def database_unavailable(exc: BaseException | None) -> bool:
    """A lost or refused database connection (restart, failover, network), as opposed to a bad query."""
    return isinstance(exc, InterfaceError | OperationalError)


def server_error(request, *args, **kwargs) -> HttpResponse:
    exc = sys.exc_info()[1]
    retryable = database_unavailable(exc)
    status, message = (503, UNAVAILABLE) if retryable else (500, SERVER_ERROR)
    if wants_json(request):
        response = JsonResponse({"detail": message, "retryable": retryable}, status=status)
    else:
        page = loader.get_template("errors/server_error.html").render({"status": status, "message": message})
        response = HttpResponse(page, status=status)
    if retryable:
        response["Retry-After"] = str(RETRY_AFTER_S)
    return response
