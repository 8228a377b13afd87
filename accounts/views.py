"""Home (sends each role to its page) and the role landing pages."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from accounts import roles
from accounts.permissions import require_role
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
