"""What every app's views do the same way: look an object up through a selector or answer 404, and a form page
that makes one thing through a service, its ValidationError shown on the form."""

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render

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
