"""Issue 15, bug 6: 403 pages were bare and /favicon.ico answered 404. A 403 or 404 page now has the site's header
and navigation, the view's reason and links on; API clients still get JSON; /favicon.ico leads to the icon."""

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("production_errors")]


@pytest.fixture
def production_errors(settings):
    settings.DEBUG = False  # the handlers, not Django's technical pages


def _page(client, path: str, status: int) -> str:
    response = client.get(path)
    assert response.status_code == status, response.content[:200]
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def test_a_403_page_has_the_navigation_the_reason_and_a_way_on(client, reader):
    client.force_login(reader)
    page = _page(client, "/jobs/", 403)
    assert '<header class="topbar">' in page and 'href="/reader/">My reading</a>' in page
    assert '<p id="error-detail">The job list is for admins.</p>' in page
    assert f"Your account ({reader.username}) does not have the role this page needs" in page
    assert '<a class="button" href="/">Home page</a>' in page
    assert 'rel="icon"' in page


def test_a_404_page_has_the_navigation_and_the_views_reason(client, coordinator):
    client.force_login(coordinator)
    page = _page(client, "/jobs/999999/", 404)
    assert '<header class="topbar">' in page and 'href="/coordinator/">Coordination</a>' in page
    assert '<p id="error-detail">No such job.</p>' in page


def test_a_url_that_names_nothing_gets_the_404_page_without_the_resolvers_details(client, coordinator):
    client.force_login(coordinator)
    page = _page(client, "/no-such-page/", 404)
    assert "Page not found" in page and 'id="error-detail"' not in page
    assert "urlpatterns" not in page and "tried" not in page


def test_a_visitor_gets_the_404_page_with_a_log_in_link(client):
    page = _page(client, "/no-such-page/", 404)
    assert '<a class="button" href="/login/">Log in</a>' in page


def test_api_clients_still_get_json(coordinator):
    client = Client()
    client.force_login(coordinator)
    response = client.get("/api/no-such-endpoint/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    response = client.get("/no-such-page/", HTTP_ACCEPT="application/json")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}


def test_favicon_ico_leads_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.ico"
    assert "max-age=86400" in response["Cache-Control"]
    icon = finders.find("favicon.ico")
    assert icon is not None
    with open(icon, "rb") as handle:
        assert handle.read(4) == b"\x00\x00\x01\x00"  # an ICO file's header


def test_every_page_names_the_icon(client):
    page = _page(client, "/login/", 200)
    assert '<link rel="icon" href="/static/favicon.ico"' in page


def test_a_403_under_the_api_from_a_plain_view_is_json_with_its_reason(client, reader):
    client.force_login(reader)
    response = client.get("/jobs/", HTTP_ACCEPT="application/json")
    assert response.status_code == 403 and response.json() == {"detail": "the job list is for admins"}
