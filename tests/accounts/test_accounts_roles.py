"""Roles, the create_user command, login and each role's landing page."""

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ReaderProfile

pytestmark = pytest.mark.django_db


def test_the_three_role_groups_exist_after_migrating():
    assert set(Group.objects.values_list("name", flat=True)) >= {"Reader", "Coordinator", "Admin"}


def test_create_user_command_makes_a_reader_with_profile():
    out = io.StringIO()
    call_command("create_user", "dr_a", "--role", "reader", "--password", "pw-Long-123", "--group",
                 "practitioner", "--years", "4", stdout=out)
    profile = ReaderProfile.objects.get(user__username="dr_a")
    assert (profile.group, profile.years_experience, profile.code) == ("practitioner", 4, "R01")
    assert profile.user.groups.get().name == "Reader"
    assert not profile.user.is_staff


def test_create_user_command_refuses_a_reader_without_group():
    with pytest.raises(CommandError, match="reader_group: a reader needs a group"):
        call_command("create_user", "dr_b", "--role", "reader", "--password", "pw-Long-123", "--years", "3")


def test_create_user_command_refuses_an_existing_user_without_update(coordinator):
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", coordinator.username, "--role", "coordinator", "--password", "pw-Long-123")


@pytest.mark.parametrize(("role", "landing"), [("reader", "/reader/"), ("coordinator", "/coordinator/"),
                                                ("admin", "/console/")])
def test_home_sends_each_role_to_its_page(client, make_user, role, landing):
    user = make_user(role)
    assert client.post("/login/", {"username": user.username, "password": "pw-Test-1234"}).status_code == 302
    response = client.get("/")
    assert response.status_code == 302 and response.url == landing
    assert client.get(landing).status_code == 200


def test_login_page_logs_in_and_redirects_home(client, reader):
    response = client.post("/login/", {"username": reader.username, "password": "pw-Test-1234"})
    assert response.status_code == 302 and response.url == "/"


def test_anonymous_users_are_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")


@pytest.mark.parametrize(("role", "forbidden"), [("reader", "/coordinator/"), ("reader", "/console/"),
                                                  ("coordinator", "/console/"), ("coordinator", "/reader/")])
def test_role_pages_are_closed_to_other_roles(client, make_user, role, forbidden):
    client.force_login(make_user(role))
    assert client.get(forbidden).status_code == 403


def test_demo_setup_creates_a_login_for_every_role(settings):
    settings.DEBUG = True
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    from core.demo import DEMO_PASSWORD

    call_command("demo_setup", "--users-only", stdout=io.StringIO())
    for name in ("admin", "coordinator", "reader1", "reader6"):   # django-axes needs the request
        assert authenticate(RequestFactory().post("/login/"), username=name, password=DEMO_PASSWORD) is not None
    assert ReaderProfile.objects.filter(group="specialist").count() == 3


@pytest.mark.parametrize("password", ["1", "password", "12345678", "dr_weak1"])
def test_create_user_command_refuses_a_weak_password(password):
    with pytest.raises(CommandError, match="password:"):
        call_command("create_user", "dr_weak", "--role", "coordinator", "--password", password)
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="dr_weak").exists()
