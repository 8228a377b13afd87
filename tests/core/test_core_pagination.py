"""The API's page size is bounded and nonsense is a 400 naming the parameter (core.pagination), on every
paginated list: cases, jobs, evaluations."""

import pytest

from core.pagination import MAX_LIMIT

pytestmark = pytest.mark.django_db

LISTS = ["/api/cases/", "/api/jobs/", "/api/inference/evaluations/"]


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize(("query", "name"), [
    ("limit=9223372036854775808", "limit"), ("limit=abc", "limit"), ("limit=0", "limit"), ("limit=-5", "limit"),
    (f"limit={MAX_LIMIT + 1}", "limit"), ("offset=-1", "offset"), ("offset=99999999999999999999", "offset"),
    ("offset=1.5", "offset"),
])
def test_nonsense_paging_is_a_400_that_names_the_parameter(admin_client, url, query, name):
    response = admin_client.get(f"{url}?{query}")
    assert response.status_code == 400, (url, query, response.status_code)
    assert name in response.json()


@pytest.mark.parametrize("url", LISTS)
def test_sensible_paging_works(admin_client, url):
    for query in ("", "?limit=1", f"?limit={MAX_LIMIT}&offset=0", "?offset=5", "?limit="):
        response = admin_client.get(url + query)
        assert response.status_code == 200, (url, query)
        assert {"count", "results"} <= set(response.json())
