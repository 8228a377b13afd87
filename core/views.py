"""What every app's views do the same way: look an object up through a selector or answer 404, a form page that
makes one thing through a service, its ValidationError shown on the form; and the pages every site has: 403 and 404
with the site's navigation (``handler403``/``handler404`` in config/urls.py), and ``/favicon.ico``."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import cache_control

T = TypeVar("T")


def found_or_404(lookup: Callable[..., T], *args: Any, message: str, **kwargs: Any) -> T:
    """``lookup(*args, **kwargs)``, a selector that raises DoesNotExist for what is missing and for what the user
    may not see; a 404 with ``message`` then, so the two are told apart by nobody."""
    try:
        return lookup(*args, **kwargs)
    except ObjectDoesNotExist:
        raise Http404(message) from None


def add_errors(form, error: ValidationError) -> None:
    """A service's ValidationError on ``form``: each field's messages on that field, the others on the form."""
    for field, field_messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, field_messages)


def form_page(request, form, template: str, save: Callable[[dict], Any], *, then: str, message: Callable[[Any], str],
              context: dict | None = None) -> HttpResponse:
    """A page whose form makes one thing through one service call (a training run, an evaluation, a study, a job).

    A valid submit: ``save(form.cleaned_data)``, then ``message(made)`` as a success and a redirect to the page
    ``then`` of what it made (its pk). Otherwise (first visit, invalid form, or the service refused: its
    ValidationError is on the form) ``template`` with the form and ``context``."""
    if form.is_valid():
        try:
            made = save(form.cleaned_data)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, message(made))
            return redirect(then, pk=made.pk)
    return render(request, template, {"form": form, **(context or {})})


# DRF's own words for these statuses, so that an API client reads the same detail from every view
DRF_DETAIL = {403: "You do not have permission to perform this action.", 404: "Not found."}


def wants_json(request) -> bool:
    """An API client (a path under /api/, or JSON asked for) is answered JSON, as DRF's own errors are."""
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def _error_page(request, *, status: int, title: str, detail: str) -> HttpResponse:
    """The site's page (its header and navigation, a way home) for an error; ``detail`` is the view's own reason,
    a fixed phrase ("the job list is for admins", "no such job"), never a value from the request."""
    if wants_json(request):
        return JsonResponse({"detail": detail or DRF_DETAIL[status]}, status=status)
    return render(request, "errors/error.html", {"status": status, "title": title, "detail": detail}, status=status)


def permission_denied(request, exception=None) -> HttpResponse:
    """handler403: what the user may not do, and where they can go instead."""
    return _error_page(request, status=403, title="Not allowed", detail=_reason(exception))


def not_found(request, exception=None) -> HttpResponse:
    """handler404: JSON under /api/ (an API client cannot read a page), else the site's page with its navigation."""
    return _error_page(request, status=404, title="Page not found", detail=_reason(exception))


def _reason(exception) -> str:
    """The message a view raised PermissionDenied or Http404 with; Django's resolver's own 404 (a dict naming the
    URL patterns tried) is not shown."""
    message = exception.args[0] if exception is not None and exception.args else ""
    return message if isinstance(message, str) else ""


@cache_control(max_age=86400, public=True)
def favicon(request) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page's ``<link rel=icon>`` says: send them to the static file
    (hashed and served by WhiteNoise in production), instead of a 404 in every log."""
    return redirect(static("favicon.ico"), permanent=False)
