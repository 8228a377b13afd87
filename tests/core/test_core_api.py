"""The API: OpenAPI schema and docs page, session auth, and the jobs endpoints' permissions."""

import pytest

from jobs import services
from jobs.models import JobStatus

pytestmark = pytest.mark.django_db


def test_schema_is_served_and_lists_the_job_endpoints(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/jobs/{id}/" in response.json()["paths"]


def test_docs_page_is_served_without_any_outside_asset(client, admin_user):
    client.force_login(admin_user)
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html and "cdn." not in html


def test_api_needs_a_login(client):
    assert client.get("/api/jobs/").status_code == 403


def test_admin_sees_every_job_others_only_their_own(client, admin_user, coordinator):
    mine = services.job_create(kind="worker_check", user=coordinator, enqueue=False)
    services.job_create(kind="worker_check", user=admin_user, enqueue=False)
    client.force_login(coordinator)
    ids = [j["id"] for j in client.get("/api/jobs/").json()["results"]]
    assert ids == [mine.pk]
    client.force_login(admin_user)
    assert client.get("/api/jobs/").json()["count"] == 2


def test_cancel_through_the_api_needs_csrf_and_works(admin_user):
    from django.test import Client

    job = services.job_create(kind="worker_check", user=admin_user, enqueue=False)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(f"/api/jobs/{job.pk}/cancel/").status_code == 403
    client.get(f"/jobs/{job.pk}/")
    token = client.cookies["csrftoken"].value
    response = client.post(f"/api/jobs/{job.pk}/cancel/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200 and response.json()["status"] == JobStatus.CANCELLED


def test_a_reader_cannot_see_someone_elses_job(client, reader, admin_user):
    job = services.job_create(kind="worker_check", user=admin_user, enqueue=False)
    client.force_login(reader)
    assert client.get(f"/api/jobs/{job.pk}/").status_code == 404
    assert client.get(f"/jobs/{job.pk}/").status_code == 404
    assert client.post(f"/api/jobs/{job.pk}/cancel/").status_code == 404


def test_job_page_has_a_progress_bar_that_polls_the_api(client, admin_user):
    job = services.job_create(kind="worker_check", user=admin_user, enqueue=False)
    client.force_login(admin_user)
    html = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'data-api="/api/jobs/{job.pk}/"' in html and "js/job.js" in html and 'id="job-fill"' in html


def test_job_list_is_for_admins_only(client, admin_user, coordinator):
    client.force_login(coordinator)
    assert client.get("/jobs/").status_code == 403
    client.force_login(admin_user)
    assert client.get("/jobs/").status_code == 200


def test_admin_can_start_a_worker_check_from_the_console(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/jobs/worker-check/", {"queue": "gpu"})
    assert response.status_code == 302
    from jobs.models import Job

    assert Job.objects.get().kind == "worker_check_gpu"
