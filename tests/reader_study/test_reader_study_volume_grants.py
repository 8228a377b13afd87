"""Volume grants (reader_study.volume_grants): after the full check of a case's first volume, its other volumes
cost no query; a finished exam, a closed study or a role taken away is seen by the very next request; a grant
never serves another reader or the other exam's assignment of the same case; a cache outage runs the full
check."""

import time

import pytest
from django.contrib.auth.models import Group
from django.core.cache import caches

from accounts import roles
from factories_reader_study import answer_all, move_washout
from reader_study import payloads, selectors, services, volume_grants

pytestmark = pytest.mark.django_db


def _volumes(client, assignment) -> list[str]:
    return [s["volume_url"] for s in client.get(f"/api/reading/{assignment.pk}/").json()["series"]]


def _load(client, url):
    return client.get(url, HTTP_ACCEPT_ENCODING="gzip")


def _bytes(response) -> bytes:
    data = b"".join(response.streaming_content)
    response.close()
    return data


@pytest.fixture
def reading(client, study_setup, reader, shared_cache):
    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    return a, _volumes(client, a)


def test_opening_the_case_grants_its_volumes(client, study_setup, reader, shared_cache,
                                             django_assert_num_queries):
    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    urls = _volumes(client, a)
    for page in ("/reading/{}/", "/api/reading/{}/"):           # the page, or the case API, opens the case
        shared_cache.clear()
        assert client.get(page.format(a.pk)).status_code == 200
        assert shared_cache.get(volume_grants.grant_key(reader.pk, a.pk))
        with django_assert_num_queries(0):
            assert all(_load(client, url).status_code == 200 for url in urls)


def test_the_grant_serves_the_same_bytes_and_headers_as_the_full_check(client, reading, shared_cache, settings):
    a, urls = reading
    shared_cache.delete(volume_grants.grant_key(a.reader_id, a.pk))
    first = _load(client, urls[0])                                     # the full check stores the grant
    assert first.status_code == 200
    granted = shared_cache.get(volume_grants.grant_key(a.reader_id, a.pk))
    assert sorted(granted) == sorted(u.split("/series/")[1].split("/")[0] for u in urls)   # every handle
    via_grant = _load(client, urls[0])
    settings.USER_CACHE = False                                      # the full check alone
    full = _load(client, urls[0])
    assert _bytes(via_grant) == _bytes(full) == _bytes(first)
    for name in ("ETag", "Cache-Control", "Content-Encoding", "Content-Length"):
        assert via_grant[name] == full[name]


def test_a_grant_lives_one_minute_at_most(client, reading):
    a, urls = reading
    _load(client, urls[0])
    cache = caches["default"]
    expires_in = cache._expire_info[cache.make_key(volume_grants.grant_key(a.reader_id, a.pk))] - time.time()
    assert 0 < expires_in <= 60 and volume_grants.GRANT_SECONDS <= 60


def test_finishing_the_exam_revokes_its_grants_at_once(client, reading, study_setup, reader,
                                                       django_capture_on_commit_callbacks):
    a, urls = reading
    assert _load(client, urls[0]).status_code == 200
    answer_all(reader, study_setup["study"], 1)
    with django_capture_on_commit_callbacks(execute=True):
        services.exam_finish(reader=reader, study=study_setup["study"], exam=1)
    assert _load(client, urls[1]).status_code == 403


def test_a_grant_written_just_after_the_revocation_does_not_come_back(client, reading, study_setup, reader,
                                                                      django_capture_on_commit_callbacks):
    a, urls = reading
    granted = volume_grants.grant_case(reader.pk, a)          # a request that checked just before the finish...
    answer_all(reader, study_setup["study"], 1)
    with django_capture_on_commit_callbacks(execute=True):
        services.exam_finish(reader=reader, study=study_setup["study"], exam=1)
    volume_grants.grant_write(reader.pk, a.pk, granted)       # ...stores its grant just after it
    assert volume_grants.grant_read(reader.pk, a.pk) == volume_grants.REVOKED
    assert _load(client, urls[0]).status_code == 403


def test_a_series_taken_off_the_case_is_refused_at_once(client, reading, coordinator,
                                                        django_capture_on_commit_callbacks):
    from imaging.models import Series
    from imaging.services import case_replace_series

    a, urls = reading
    assert _load(client, urls[0]).status_code == 200
    handle = urls[0].split("/series/")[1].split("/")[0]
    removed = next(s for s in Series.objects.filter(case_id=a.case_id)
                   if payloads.series_handle(a.pk, s.pk) == handle)
    with django_capture_on_commit_callbacks(execute=True):
        case_replace_series(case=a.case, remove_series=[removed], reason="another patient's series", by=coordinator)
    assert _load(client, urls[0]).status_code == 404
    assert _load(client, urls[1]).status_code == 200


def test_closing_the_study_revokes_every_grant_at_once(client, reading, study_setup, coordinator,
                                                       django_capture_on_commit_callbacks):
    a, urls = reading
    assert _load(client, urls[0]).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study_setup["study"], by=coordinator)
    assert _load(client, urls[0]).status_code == 403


def test_a_role_taken_away_is_refused_despite_the_grant(client, reading, reader):
    a, urls = reading
    assert _load(client, urls[0]).status_code == 200
    reader.groups.set([Group.objects.get(name=roles.COORDINATOR)])
    assert _load(client, urls[1]).status_code == 403


def test_a_grant_serves_neither_another_reader_nor_the_other_exam(client, reading, study_setup, reader,
                                                                  other_reader):
    a, urls = reading
    assert _load(client, urls[0]).status_code == 200
    client.force_login(other_reader)
    assert _load(client, urls[0]).status_code == 404                  # not theirs: the full check says so
    client.force_login(reader)
    answer_all(reader, study_setup["study"], 1)
    services.exam_finish(reader=reader, study=study_setup["study"], exam=1)
    move_washout(study_setup["study"], reader, days=29)
    exam2 = selectors.worklist(study_setup["study"], reader, 2).get(case_id=a.case_id)
    other_urls = _volumes(client, exam2)
    handles = {u.split("/series/")[1].split("/")[0] for u in urls}
    assert handles.isdisjoint(u.split("/series/")[1].split("/")[0] for u in other_urls)
    assert _load(client, other_urls[0]).status_code == 200
    exam1_path = urls[0].split("?")[0]
    assert _load(client, exam1_path.replace(f"/{a.pk}/", f"/{exam2.pk}/")).status_code == 404


def test_an_unknown_handle_is_not_found_and_the_grant_stays(client, reading, shared_cache):
    a, urls = reading
    assert _load(client, urls[0]).status_code == 200
    assert _load(client, f"/api/reading/{a.pk}/series/0123456789abcdef/volume").status_code == 404
    assert shared_cache.get(volume_grants.grant_key(a.reader_id, a.pk))


def test_an_unreachable_cache_runs_the_full_check(client, reading, monkeypatch, caplog):
    a, urls = reading
    cache = caches["default"]
    cache.delete(volume_grants.grant_key(a.reader_id, a.pk))        # the one the case API stored

    def unreachable(*args, **kwargs):
        raise ConnectionError("cache server unreachable")

    monkeypatch.setattr(volume_grants, "cache", type("Down", (), {"get": unreachable, "set": unreachable,
                                                                  "delete_many": unreachable})())
    assert _load(client, urls[0]).status_code == 200
    assert "volume grant unreadable" in caplog.text
    assert cache.get(volume_grants.grant_key(a.reader_id, a.pk)) is None
