"""The read path's cost: a bounded number of SQL queries per request, the same for a small and a larger
worklist; volumes sent as the stored file (wsgi.file_wrapper, i.e. sendfile under gunicorn) and cached for
good when their URL names their content. Timings are in benchmarks/ and docs/production.md, not here."""

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import RequestFactory

from core.constants import LEIOMYOMA, SARCOMA
from factories_reader_study import (
    EvaluationFactory,
    ai_result,
    answer_all,
    case_with_series,
    move_washout,
    open_study,
)
from imaging import importer_store
from imaging.api import VERSIONED_CACHE_CONTROL, VOLUME_CACHE_SECONDS
from imaging.models import Series
from reader_study import payloads, selectors, services, volume_grants

pytestmark = pytest.mark.django_db

# Per request, whatever the number of cases: session and user (2, Django's middleware), then the assignment
# with its study and read (the API checks the Reader role in that query; the page asks for the user's roles,
# which its navigation needs anyway: +1), the exam's progress rows, the worklist rows, the two cases' series;
# exam 2 adds the AI result; a case's first opening adds two small UPDATEs (first_opened_at, started_at).
CASE_MAX_QUERIES = 6
PAGE_MAX_QUERIES = 7
CASE_EXAM2_MAX_QUERIES = 7
PAGE_EXAM2_MAX_QUERIES = 8
FIRST_OPEN_EXTRA = 2
TIME_MAX_QUERIES = 6
READ_MAX_QUERIES = 13
WORKLIST_MAX_QUERIES = 7
# A volume: session and user, the reader's assignment (with the role), its task's progress (images only while
# the task is open), the case's series rows.
VOLUME_MAX_QUERIES = 5

SIZES = [4, 30]    # a small and a larger worklist: the bounds are the same


def _study(coordinator, readers, n_cases: int):
    cases = [case_with_series(truth=SARCOMA if i % 4 == 0 else LEIOMYOMA, seed=i, n_slices=4, size=16)
             for i in range(n_cases)]
    evaluation = EvaluationFactory()
    for case in cases:
        ai_result(evaluation, case, 40.0)
    return open_study(coordinator=coordinator, readers=readers, cases=cases, evaluation=evaluation,
                      name=f"Query study {n_cases} (synthetic)")


@pytest.fixture
def larger(request, coordinator, reader, other_reader):
    return _study(coordinator, [reader, other_reader], request.param)


@pytest.mark.parametrize("larger", SIZES, indirect=True)
def test_case_api_and_reading_page_queries_do_not_grow_with_the_worklist(
        client, larger, reader, django_assert_max_num_queries):
    client.force_login(reader)
    items = list(selectors.worklist(larger, reader, 1))
    services.read_submit(reader=reader, assignment=items[0], call=SARCOMA, confidence=60)
    middle = items[len(items) // 2]
    with django_assert_max_num_queries(CASE_MAX_QUERIES + FIRST_OPEN_EXTRA):
        assert client.get(f"/api/reading/{middle.pk}/").status_code == 200
    with django_assert_max_num_queries(CASE_MAX_QUERIES):
        assert client.get(f"/api/reading/{middle.pk}/").status_code == 200
    with django_assert_max_num_queries(PAGE_MAX_QUERIES):
        assert client.get(f"/reading/{middle.pk}/").status_code == 200
    with django_assert_max_num_queries(PAGE_MAX_QUERIES + FIRST_OPEN_EXTRA):   # the last case: wraps round
        assert client.get(f"/reading/{items[-1].pk}/").status_code == 200
    with django_assert_max_num_queries(WORKLIST_MAX_QUERIES):
        assert client.get(f"/api/reading/studies/{larger.pk}/exams/1/").status_code == 200


@pytest.mark.parametrize("larger", SIZES, indirect=True)
def test_exam2_case_queries_do_not_grow_with_the_worklist(client, larger, reader,
                                                          django_assert_max_num_queries):
    answer_all(reader, larger, 1)
    services.exam_finish(reader=reader, study=larger, exam=1)
    move_washout(larger, reader, days=29)
    client.force_login(reader)
    a = list(selectors.worklist(larger, reader, 2))[1]
    client.get(f"/api/reading/{a.pk}/")
    with django_assert_max_num_queries(CASE_EXAM2_MAX_QUERIES):
        payload = client.get(f"/api/reading/{a.pk}/").json()
    assert payload["ai"]["likelihood"] == 40.0
    with django_assert_max_num_queries(PAGE_EXAM2_MAX_QUERIES):
        assert client.get(f"/reading/{a.pk}/").status_code == 200


@pytest.mark.parametrize("larger", SIZES, indirect=True)
def test_time_ping_read_submit_and_volume_queries_are_bounded(client, larger, reader,
                                                              django_assert_max_num_queries):
    client.force_login(reader)
    a = list(selectors.worklist(larger, reader, 1))[2]
    payload = client.get(f"/api/reading/{a.pk}/").json()
    with django_assert_max_num_queries(TIME_MAX_QUERIES):
        assert client.post(f"/api/reading/{a.pk}/time/", {"seconds": 5},
                           content_type="application/json").status_code == 200
    for confidence in (70, 80):             # the first submit creates the read, the second changes it
        with django_assert_max_num_queries(READ_MAX_QUERIES):
            assert client.post(f"/api/reading/{a.pk}/read/", {"call": SARCOMA, "confidence": confidence},
                               content_type="application/json").status_code == 200
    with django_assert_max_num_queries(VOLUME_MAX_QUERIES):
        response = client.get(payload["series"][0]["volume_url"], HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200


@pytest.mark.parametrize("larger", SIZES, indirect=True)
def test_reading_state_agrees_with_the_single_selectors(larger, reader):
    """The one-query reading state gives what exam_status, neighbours and next_assignment give."""
    items = list(selectors.worklist(larger, reader, 1))
    for i in (0, 2, len(items) - 1):
        services.read_submit(reader=reader, assignment=items[i], call=LEIOMYOMA, confidence=20,
                             active_seconds=3 + i)
    for a in selectors.worklist(larger, reader, 1):
        a.study = larger
        state = selectors.reading_state(a)
        status = selectors.exam_status(larger, reader, 1)
        previous, following = selectors.neighbours(a)
        upcoming = selectors.next_assignment(a)
        assert (state.status.total, state.status.done, state.status.state) == (status.total, status.done,
                                                                              status.state)
        assert state.status.seconds_per_case == status.seconds_per_case
        assert state.previous == (previous.pk if previous else None)
        assert state.following == (following.pk if following else None)
        assert state.next_unread == (upcoming.pk if upcoming else None) == selectors.next_unread(a)
        assert state.next_unread_case == (upcoming.case_id if upcoming else None)


# --- volumes ------------------------------------------------------------------------------------------
def _first_volume(client, study_setup, reader):
    """The first series of the reader's first case, and its volume URL as the case payload gives it."""
    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    handle = client.get(f"/api/reading/{a.pk}/").json()["series"][0]["id"]
    series = next(s for s in Series.objects.filter(case_id=a.case_id)
                  if payloads.series_handle(a.pk, s.pk) == handle)
    return series, payloads.volume_url(a.pk, series)


def test_versioned_volume_urls_are_cached_as_immutable(client, study_setup, reader):
    series, url = _first_volume(client, study_setup, reader)
    assert "?v=" in url and series.volume_sha256[:16] not in url      # the version is keyed to the assignment
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and response["Cache-Control"] == VERSIONED_CACHE_CONTROL
    assert VERSIONED_CACHE_CONTROL == "private, max-age=31536000, immutable"
    assert response["ETag"] and response["Content-Encoding"] == "gzip"
    again = client.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again["Cache-Control"] == VERSIONED_CACHE_CONTROL
    inflated = client.get(url, HTTP_ACCEPT_ENCODING="identity")
    assert inflated.status_code == 200 and inflated["Cache-Control"] == VERSIONED_CACHE_CONTROL


@pytest.mark.parametrize("query", ["", "?v=", "?v=0123456789abcdef"])
def test_unversioned_or_stale_volume_urls_keep_the_revalidating_policy(client, study_setup, reader, query):
    _, url = _first_volume(client, study_setup, reader)
    response = client.get(url.split("?")[0] + query, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Cache-Control"] == f"private, max-age={VOLUME_CACHE_SECONDS}"
    assert "immutable" not in response["Cache-Control"]


def test_the_volume_goes_to_the_servers_file_wrapper_without_python_copying(client, study_setup, reader):
    """Under a WSGI server the stored gzip file is handed to ``wsgi.file_wrapper`` as an open file (gunicorn
    then sends it with sendfile(2)); Django never reads it into memory."""
    series, url = _first_volume(client, study_setup, reader)
    path, query = url.split("?")
    wrapped = []

    class FileWrapper:
        def __init__(self, filelike, block_size=8192):
            wrapped.append(filelike)
            self.filelike = filelike

        def __iter__(self):
            return iter(())

        def close(self):
            self.filelike.close()

    environ = RequestFactory()._base_environ(
        PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD="GET", HTTP_ACCEPT_ENCODING="gzip",
        HTTP_COOKIE=f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}")
    environ["wsgi.file_wrapper"] = FileWrapper
    statuses = []
    # as Django's test client does: keep the test's transaction (and connection) across the request
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = WSGIHandler()(environ, lambda status, headers: statuses.append((status, dict(headers))))
        result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    status, headers = statuses[0]
    assert status.startswith("200") and isinstance(result, FileWrapper)
    assert wrapped[0].name == str(importer_store.volume_file(series))
    assert headers["Content-Length"] == str(importer_store.volume_file(series).stat().st_size)
    assert headers["Content-Encoding"] == "gzip"


# With the shared cache (Redis in production): the session, and the user with its roles, come from the cache;
# the later volumes of a case from the reader's volume grant (reader_study.volume_grants).
SESSION = USER = 1


def test_with_the_shared_cache_the_session_user_and_roles_cost_no_query(
        client, study_setup, reader, shared_cache, django_assert_max_num_queries, django_assert_num_queries):
    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    payload = client.get(f"/api/reading/{a.pk}/").json()         # first opening; fills the cache
    with django_assert_max_num_queries(CASE_MAX_QUERIES - SESSION - USER):
        assert client.get(f"/api/reading/{a.pk}/").status_code == 200
    with django_assert_max_num_queries(PAGE_MAX_QUERIES - SESSION - USER - 1):    # and no role query
        assert client.get(f"/reading/{a.pk}/").status_code == 200
    first, second = (s["volume_url"] for s in payload["series"][:2])
    with django_assert_num_queries(0):                      # the grant stored when the case was opened
        assert client.get(first, HTTP_ACCEPT_ENCODING="gzip").status_code == 200
    shared_cache.delete(volume_grants.grant_key(reader.pk, a.pk))
    with django_assert_max_num_queries(VOLUME_MAX_QUERIES - SESSION - USER):       # without it: the full check
        assert client.get(first, HTTP_ACCEPT_ENCODING="gzip").status_code == 200
    with django_assert_num_queries(0):                                             # which grants the rest
        assert client.get(second, HTTP_ACCEPT_ENCODING="gzip").status_code == 200
    with django_assert_max_num_queries(TIME_MAX_QUERIES - SESSION - USER):
        assert client.post(f"/api/reading/{a.pk}/time/", {"seconds": 5},
                           content_type="application/json").status_code == 200


def test_with_the_cached_users_roles_the_case_query_joins_no_group(client, study_setup, reader, shared_cache):
    """Where the cached user brings its roles, the API checks the Reader role from them and the assignment's
    query no longer joins the groups (~0.5 ms of PostgreSQL planning); a reader whose role was taken away is
    still refused with 403 (the role change clears the cached user: accounts.signals)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    client.get(f"/api/reading/{a.pk}/")                                   # the cached user is stored
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/api/reading/{a.pk}/").status_code == 200
    assert queries.captured_queries and not any("auth_group" in q["sql"] for q in queries.captured_queries)
    reader.groups.clear()
    assert client.get(f"/api/reading/{a.pk}/").status_code == 403
    assert client.get(f"/api/reading/{a.pk + 10_000}/").status_code == 403   # not a reader: 403, never 404


def test_storing_the_volume_grant_costs_the_page_and_the_case_api_no_query(client, study_setup, reader,
                                                                           shared_cache):
    """The grant is built from the series the payload read: with or without a grant held, the same queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    for url in (f"/api/reading/{a.pk}/", f"/reading/{a.pk}/"):
        client.get(url)                                                   # opened: first_opened_at written
        counts = []
        for _ in range(2):
            shared_cache.delete(volume_grants.grant_key(reader.pk, a.pk))
            with CaptureQueriesContext(connection) as without_grant:
                assert client.get(url).status_code == 200
            assert shared_cache.get(volume_grants.grant_key(reader.pk, a.pk))    # stored again
            with CaptureQueriesContext(connection) as with_grant:
                assert client.get(url).status_code == 200
            counts.append((len(without_grant), len(with_grant)))
        assert all(without == held for without, held in counts), counts


def test_the_read_paths_compiled_queries_give_what_the_orm_gives(study_setup, reader):
    """selectors' hot queries run through core.compiled_queries: same rows as the querysets built fresh."""
    from django.db.models import F

    from reader_study.models import ANSWER_RELATION, Assignment, ExamProgress

    study = study_setup["study"]
    for a in selectors.worklist(study, reader, 1):
        got = selectors.assignment_for_reader(reader, a.pk)
        fresh = Assignment.objects.select_related("study", "read").get(pk=a.pk)
        assert (got.pk, got.case_id, got.position, got.study.name, got.study.hanging_protocol) == \
            (fresh.pk, fresh.case_id, fresh.position, fresh.study.name, fresh.study.hanging_protocol)
        shown = selectors.cases_series([a.case_id])[a.case_id]
        assert [(s.pk, s.volume_path, s.meta) for s in shown] == sorted(
            ((s.pk, s.volume_path, s.meta) for s in selectors._readers_series().filter(case_id=a.case_id)),
            key=lambda row: selectors._series_sort_key(next(s for s in shown if s.pk == row[0])))
    assert selectors._worklist_rows(study, reader, 1) == list(
        Assignment.objects.filter(study=study, reader=reader, exam=1).order_by("position").values(
            "pk", "position", "case_id", "active_seconds", answer=F(f"{ANSWER_RELATION[1]}__pk")))
    progress = selectors._progress_rows(study, reader, with_last_exam1=True)
    assert {e: (p.pk, p.started_at, p.finished_at) for e, p in progress.items()} == {
        p.exam: (p.pk, p.started_at, p.finished_at) for p in ExamProgress.objects.filter(study=study, reader=reader)}
    with pytest.raises(Assignment.DoesNotExist):
        selectors.assignment_for_reader(reader, a.pk, exams=(2,))            # an exam-1 case asked as exam 2


def test_a_key_beyond_any_id_is_not_found_on_every_backend(client, study_setup, reader):
    """The compiled assignment query takes the URL's integer as is: one no key can reach is answered 404 (the
    ORM folded it away; SQLite would overflow on it)."""
    client.force_login(reader)
    for url in ("/reading/{}/", "/api/reading/{}/", "/api/reading/{}/time/"):
        method = client.post if url.endswith("time/") else client.get
        assert method(url.format(2**64), content_type="application/json").status_code == 404
