"""Home (sends each role to its page), the role landing pages, and the locked accounts (login throttling)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import roles, selectors, services
from accounts.lockout import cool_off_seconds
from accounts.permissions import require_role, role_required
from core import navigation

ROLE_PAGES = {roles.ADMIN: "admin_home", roles.COORDINATOR: "coordinator_home", roles.READER: "reader_home"}


@login_required
def home(request):
    role = roles.primary_role(request.user)
    if role is None:
        return render(request, "accounts/no_role.html", status=403)
    return redirect(ROLE_PAGES[role])


def _role_page(request, role: str):
    require_role(request.user, role, f"this page is for the {role} role")
    return render(request, "accounts/role_home.html", {"role": role, "links": navigation.links_for(role)})


@login_required
def reader_home(request):
    return _role_page(request, roles.READER)


@login_required
def coordinator_home(request):
    return _role_page(request, roles.COORDINATOR)


@login_required
def admin_home(request):
    return _role_page(request, roles.ADMIN)


@role_required(roles.COORDINATOR, "unlocking accounts is for coordinators and admins")
def locked_accounts(request):
    """The accounts locked out by login throttling that this user may unlock, each with an Unlock button."""
    seconds = cool_off_seconds()
    return render(request, "accounts/locked_accounts.html", {
        "rows": selectors.locked_users_visible_to(request.user),
        "cool_off_minutes": seconds // 60 if seconds else None, "failure_limit": settings.AXES_FAILURE_LIMIT,
    })


@require_POST
@role_required(roles.COORDINATOR, "unlocking accounts is for coordinators and admins")
def user_unlock(request, pk: int):
    user = get_object_or_404(get_user_model(), pk=pk)
    services.user_unlock(user=user, by=request.user)   # 403 for a coordinator unlocking a coordinator
    messages.success(request, f"{user.get_username()} can sign in again (audited).")
    return redirect("locked_accounts")
