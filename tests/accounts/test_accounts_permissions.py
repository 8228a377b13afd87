"""The one permission idiom (accounts.permissions): pages sign in first, then 403 with the reason; API
permission classes answer 403; admins pass a coordinator check."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.test import APIRequestFactory

from accounts import roles
from accounts.permissions import IsAdmin, IsCoordinator, IsReader, require_role, role_required

pytestmark = pytest.mark.django_db


@role_required(roles.COORDINATOR, "cohorts are for coordinators")
def _coordinator_page(request):
    return HttpResponse("ok")


def _request(user):
    request = RequestFactory().get("/somewhere/?x=1")
    request.user = user
    return request


def test_a_visitor_is_sent_to_the_login_page_with_the_way_back(client):
    from django.contrib.auth.models import AnonymousUser

    response = _coordinator_page(_request(AnonymousUser()))
    assert response.status_code == 302 and "/login/?next=/somewhere/%3Fx%3D1" in response["Location"]


@pytest.mark.parametrize(("role", "allowed"), [("reader", False), ("coordinator", True), ("admin", True)])
def test_the_role_decides_and_a_refusal_says_why(make_user, role, allowed):
    request = _request(make_user(role))
    if allowed:
        assert _coordinator_page(request).status_code == 200
    else:
        with pytest.raises(PermissionDenied, match="cohorts are for coordinators"):
            _coordinator_page(request)


def test_an_unknown_role_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown role"):
        role_required("Radiographer")


def test_require_role_inside_a_view(make_user):
    require_role(make_user("admin"), roles.ADMIN)
    with pytest.raises(PermissionDenied, match="this is for admins"):
        require_role(make_user("coordinator"), roles.ADMIN)


@pytest.mark.parametrize(("role", "reader", "coordinator", "admin"), [
    ("reader", True, False, False), ("coordinator", False, True, False), ("admin", False, True, True),
])
def test_api_permission_classes(make_user, role, reader, coordinator, admin):
    request = APIRequestFactory().get("/api/x/")
    request.user = make_user(role)
    assert [cls().has_permission(request, None) for cls in (IsReader, IsCoordinator, IsAdmin)] == [
        reader, coordinator, admin]
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    assert not any(cls().has_permission(request, None) for cls in (IsReader, IsCoordinator, IsAdmin))
    assert IsCoordinator().message == "this is for coordinators"
