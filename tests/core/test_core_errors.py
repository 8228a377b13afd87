"""Server errors in production: a lost database answers 503 + Retry-After (retryable), anything else 500;
neither leaks the exception's text."""

import json
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client, RequestFactory

from config import errors

SECRET_SQL = "SELECT patient_name FROM secret_table"


def _handled(exc: Exception, path: str):
    request = RequestFactory().get(path)
    try:
        raise exc
    except Exception:
        return errors.server_error(request)


@pytest.mark.parametrize("exc", [OperationalError(SECRET_SQL), InterfaceError(SECRET_SQL)])
def test_a_lost_database_answers_503_with_retry_after_in_json_under_api(exc):
    response = _handled(exc, "/api/reading/1/read/")
    assert response.status_code == 503
    assert response["Retry-After"] == str(errors.RETRY_AFTER_S)
    body = json.loads(response.content)
    assert body == {"detail": errors.UNAVAILABLE, "retryable": True}
    assert SECRET_SQL not in response.content.decode()


def test_a_lost_database_answers_a_plain_503_page_elsewhere():
    response = _handled(OperationalError(SECRET_SQL), "/reading/1/")
    html = response.content.decode()
    assert response.status_code == 503 and "Temporarily unavailable" in html and "Retry" in html
    assert SECRET_SQL not in html and "/static/" not in html


def test_any_other_error_is_a_500_that_is_not_retryable():
    response = _handled(ValueError(SECRET_SQL), "/api/jobs/")
    assert response.status_code == 500 and "Retry-After" not in response
    assert json.loads(response.content)["retryable"] is False
    assert SECRET_SQL not in response.content.decode()


@pytest.mark.django_db
def test_the_handler_is_wired_for_real_requests(settings, reader):
    settings.DEBUG = False
    client = Client(raise_request_exception=False)
    client.force_login(reader)
    with mock.patch("reader_study.selectors.studies_for_reader", side_effect=OperationalError(SECRET_SQL)):
        response = client.get("/api/reading/studies/")
    assert response.status_code == 503 and response.json()["retryable"] is True
