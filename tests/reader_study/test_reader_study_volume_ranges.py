"""Slice ranges of a volume (``?slices=FIRST-LAST``), the viewer's progressive loading: the frames asked for and
nothing else, under the whole volume's permission rules (only through the reader's own open task), with an ETag
and caching of their own; malformed or out-of-range requests get 400 with the valid range."""

import gzip

import numpy as np
import pytest

from factories_reader_study import answer_all
from imaging import importer_store
from imaging.api import VERSIONED_CACHE_CONTROL, VOLUME_CACHE_SECONDS
from imaging.models import Series
from reader_study import payloads, selectors, services

pytestmark = pytest.mark.django_db


def _first_volume(client, study_setup, reader):
    """The reader's first case's first series, its stored values and its volume URL as the payload gives it."""
    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    url = client.get(f"/api/reading/{a.pk}/").json()["series"][0]["volume_url"]
    handle = url.split("/series/")[1].split("/")[0]
    series = next(s for s in Series.objects.filter(case_id=a.case_id) if payloads.series_handle(a.pk, s.pk) == handle)
    return a, series, importer_store.read_stored(series), url


def _frames(response, series) -> np.ndarray:
    body = gzip.decompress(response.content) if response.get("Content-Encoding") == "gzip" else response.content
    return np.frombuffer(body, "<u2").reshape(-1, series.rows, series.cols)


@pytest.mark.parametrize("query, first, last", [("3-5", 3, 5), ("0-0", 0, 0), ("7", 7, 7), ("0-7", 0, 7)])
def test_a_slice_range_answers_exactly_those_frames_gzip_encoded(client, study_setup, reader, query, first, last):
    _, series, stored, url = _first_volume(client, study_setup, reader)
    response = client.get(f"{url}&slices={query}", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    assert response["Content-Length"] == str(len(response.content))
    assert np.array_equal(_frames(response, series), stored[first:last + 1])


def test_a_client_without_gzip_gets_the_range_inflated(client, study_setup, reader):
    _, series, stored, url = _first_volume(client, study_setup, reader)
    response = client.get(f"{url}&slices=2-4", HTTP_ACCEPT_ENCODING="identity")
    assert response.status_code == 200 and "Content-Encoding" not in response
    assert len(response.content) == 3 * series.rows * series.cols * 2
    assert np.array_equal(_frames(response, series), stored[2:5])


def test_a_range_of_a_versioned_url_is_immutable_with_its_own_etag(client, study_setup, reader):
    _, _, _, url = _first_volume(client, study_setup, reader)
    whole = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    part = client.get(f"{url}&slices=1-2", HTTP_ACCEPT_ENCODING="gzip")
    other = client.get(f"{url}&slices=1-3", HTTP_ACCEPT_ENCODING="gzip")
    assert part["Cache-Control"] == VERSIONED_CACHE_CONTROL
    assert len({whole["ETag"], part["ETag"], other["ETag"]}) == 3
    again = client.get(f"{url}&slices=1-2", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=part["ETag"])
    assert again.status_code == 304 and again["ETag"] == part["ETag"] and not again.content
    assert client.get(f"{url}&slices=1-3", HTTP_ACCEPT_ENCODING="gzip",
                      HTTP_IF_NONE_MATCH=part["ETag"]).status_code == 200        # another range: another tag
    unversioned = client.get(url.split("?")[0] + "?slices=1-2", HTTP_ACCEPT_ENCODING="gzip")
    assert unversioned["Cache-Control"] == f"private, max-age={VOLUME_CACHE_SECONDS}"


@pytest.mark.parametrize("query, message", [
    ("8-9", "slices 8-9 are outside this series: it has 8 slices (0-7)"),
    ("8", "slices 8-8 are outside this series: it has 8 slices (0-7)"),
    ("5-2", "slices 5-2 are outside this series"),
    ("a-b", "is not a slice range: expected FIRST-LAST"),
    ("-1-3", "is not a slice range"),
    ("", "is not a slice range"),
])
def test_a_bad_range_is_400_with_the_valid_range(client, study_setup, reader, query, message):
    _, _, _, url = _first_volume(client, study_setup, reader)
    response = client.get(f"{url}&slices={query}", HTTP_ACCEPT_ENCODING="gzip", HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert message in response.json()["slices"][0]


def test_ranges_follow_the_readers_rules_other_readers_and_the_washout(client, study_setup, reader, other_reader,
                                                                      coordinator):
    study = study_setup["study"]
    a, _, _, url = _first_volume(client, study_setup, reader)
    assert client.get(f"{url}&slices=0-1").status_code == 200
    handle = url.split("/series/")[1].split("/")[0]
    theirs = selectors.worklist(study, other_reader, 1).get(case_id=a.case_id)
    assert client.get(f"/api/reading/{theirs.pk}/series/{handle}/volume?slices=0-1").status_code == 404
    client.force_login(other_reader)                     # another reader, with the URL of someone else's task
    assert client.get(f"{url}&slices=0-1").status_code == 404
    assert client.get(f"{url}&slices=99-100").status_code == 404    # no 400: nothing about a volume they may not see
    client.force_login(coordinator)                      # coordinators use imaging's endpoint, not the readers'
    assert client.get(f"{url}&slices=0-1").status_code == 403
    client.force_login(reader)
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)  # the washout: exam 1 closed, exam 2 not open
    assert client.get(f"{url}&slices=0-1").status_code == 403
    assert client.get(f"{url}&slices=99-100").status_code == 403


def test_coordinators_get_ranges_from_imagings_endpoint(client, study_setup, coordinator):
    series = Series.objects.filter(case=study_setup["cases"][0]).first()
    client.force_login(coordinator)
    response = client.get(f"/api/series/{series.pk}/volume?slices=6-7", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert np.array_equal(_frames(response, series), importer_store.read_stored(series)[6:8])
    assert client.get(f"/api/series/{series.pk}/volume?slices=0-8").status_code == 400


def test_a_volume_stored_before_frames_were_cuttable_is_rewritten_once_and_keeps_its_etag(client, study_setup,
                                                                                        reader):
    _, series, stored, url = _first_volume(client, study_setup, reader)
    path = importer_store.volume_file(series)
    whole_etag = client.get(url, HTTP_ACCEPT_ENCODING="gzip")["ETag"]
    path.write_bytes(gzip.compress(stored.astype("<u2").tobytes(), compresslevel=1, mtime=0))   # the old layout
    path.with_name(importer_store.FRAMES_FILE).unlink()
    response = client.get(f"{url}&slices=4-6", HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and np.array_equal(_frames(response, series), stored[4:7])
    assert path.with_name(importer_store.FRAMES_FILE).exists()
    assert np.array_equal(importer_store.read_stored(series), stored)        # the same values, now cuttable
    assert client.get(url, HTTP_ACCEPT_ENCODING="gzip")["ETag"] == whole_etag
