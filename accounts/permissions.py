"""One permission idiom for every app: ``role_required`` for views, ``HasRole`` classes for the API.

Before, four idioms were in use (a ``coordinator_required`` decorator in imaging, ``if not is_...: raise
PermissionDenied`` at the top of views, ``_reader_only`` helpers in the API, ``user_passes_test``). Now:

* a page:  ``@role_required(COORDINATOR, "importing DICOM is for coordinators")`` — signs in first (a
  visitor goes to the login page), then 403 with the message for a wrong role;
* an API view: ``@permission_classes([IsCoordinator])`` (or ``IsReader`` / ``IsAdmin``) — 403 with the
  class's message; DRF answers 403 to a visitor as well (session authentication, no login redirect).

Which *objects* a user may see is still decided by the selectors (``..._visible_to(user)``); a role check
only says who may use a page at all. Admins may do everything a coordinator does (``roles.is_coordinator``).
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from accounts import roles

_CHECKS = {roles.READER: roles.is_reader, roles.COORDINATOR: roles.is_coordinator, roles.ADMIN: roles.is_admin}
_DEFAULT_MESSAGES = {roles.READER: "this is for readers", roles.COORDINATOR: "this is for coordinators",
                     roles.ADMIN: "this is for admins"}


def has_role(user, role: str) -> bool:
    return _CHECKS[role](user)


def role_required(role: str, message: str | None = None):
    """Decorator for a view function: signed in, and in ``role`` (admins pass a coordinator check)."""
    if role not in _CHECKS:
        raise ValueError(f"unknown role {role!r}; one of {tuple(_CHECKS)}")

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            require_role(request.user, role, message)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def require_role(user, role: str, message: str | None = None) -> None:
    """The same check inside a view that serves several roles differently (raise 403 when not in ``role``)."""
    if not has_role(user, role):
        raise PermissionDenied(message or _DEFAULT_MESSAGES[role])


class _HasRole(BasePermission):
    role = ""

    @property
    def message(self) -> str:
        return _DEFAULT_MESSAGES[self.role]

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and has_role(request.user, self.role)


class IsReader(_HasRole):
    role = roles.READER


class IsCoordinator(_HasRole):
    """Coordinators and admins."""

    role = roles.COORDINATOR


class IsAdmin(_HasRole):
    role = roles.ADMIN
