"""Blinding side channels (issue 12 items 1-3), driven through the API as a reader's browser would.

- Exam 1 and exam 2 of a case are unlinkable: the reader's browser gets assignment-scoped series handles,
  volume URLs and ETags, never a series' database key or its content hash.
- Images only while one of the reader's own exams on the case is open: none in the washout, none after.
- A locked item (the descriptor task holds the leiomyomas only) answers exactly like one that does not exist,
  so counting answers cannot give the prevalence.
"""

import re

import pytest

from factories_reader_study import answer_all, move_washout
from imaging.models import Series
from reader_study import selectors, services
from reader_study.models import DESCRIPTORS, Assignment

pytestmark = pytest.mark.django_db


def _case_views(client, assignment) -> dict:
    """What the reader's browser learns of a case: its payload, every volume URL and every volume's ETag."""
    payload = client.get(f"/api/reading/{assignment.pk}/").json()
    etags = []
    for series in payload["series"]:
        response = client.get(series["volume_url"], HTTP_ACCEPT_ENCODING="gzip")
        assert response.status_code == 200, series["volume_url"]
        etags.append(response.headers["ETag"])
        b"".join(response.streaming_content)
    return {"payload": payload, "ids": {s["id"] for s in payload["series"]},
            "urls": {s["volume_url"] for s in payload["series"]} | {payload.get("preload")}, "etags": set(etags)}


def _strings(value) -> set[str]:
    """Every string and number in a JSON value, at any depth."""
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return {str(value)}


def _the_same_case_in_both_exams(study, reader):
    exam1 = {a.case_id: a for a in selectors.worklist(study, reader, 1)}
    exam2 = {a.case_id: a for a in selectors.worklist(study, reader, 2)}
    return [(exam1[case], exam2[case]) for case in exam1]


def test_exam1_and_exam2_of_a_case_share_no_series_id_volume_url_or_etag(client, study_setup, reader,
                                                                         other_reader):
    study = study_setup["study"]
    client.force_login(reader)
    pairs = _the_same_case_in_both_exams(study, reader)
    seen1 = {a1.pk: _case_views(client, a1) for a1, _ in pairs}
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=29)
    for a1, a2 in pairs:
        one, two = seen1[a1.pk], _case_views(client, a2)
        assert one["ids"] and two["ids"]
        assert not one["ids"] & two["ids"]
        assert not one["urls"] & two["urls"]
        assert not one["etags"] & two["etags"]
    # no database key and no content hash of a series reaches the reader, in either exam
    keys = {str(s.pk) for s in Series.objects.all()}
    hashes = [s.volume_sha256 for s in Series.objects.all()]
    for views in seen1.values():
        payload = views["payload"]
        assert not {str(s["id"]) for s in payload["series"]} & keys
        assert not {str(i) for i in payload["default_series"]} & keys
        text = " ".join(_strings(payload)) + " ".join(views["etags"])
        assert not any(h[:12] in text for h in hashes)
        pattern = r"/series/[0-9a-f]+/volume(\?v=[0-9a-f]+)?([?&]slices=[0-9]+-[0-9]+)?"
        assert all(re.fullmatch(rf"/api/reading/{a}" + pattern, u)
                   for u in views["urls"] if u for a in [re.search(r"/api/reading/(\d+)/", u).group(1)])
    # and across readers: the same case's handles differ for another reader
    client.force_login(other_reader)
    theirs = _case_views(client, selectors.worklist(study, other_reader, 1).filter(case_id=pairs[0][0].case_id)
                         .get())
    assert not theirs["ids"] & seen1[pairs[0][0].pk]["ids"]
    assert not theirs["etags"] & seen1[pairs[0][0].pk]["etags"]


def test_a_handle_opens_only_through_its_own_assignment(client, study_setup, reader, other_reader):
    study = study_setup["study"]
    client.force_login(reader)
    mine = selectors.worklist(study, reader, 1).first()
    url = client.get(f"/api/reading/{mine.pk}/").json()["series"][0]["volume_url"]
    theirs = selectors.worklist(study, other_reader, 1).get(case_id=mine.case_id)
    handle = url.split("/series/")[1].split("/")[0]
    assert client.get(f"/api/reading/{theirs.pk}/series/{handle}/volume").status_code == 404
    other_case = selectors.worklist(study, reader, 1).exclude(case_id=mine.case_id).first()
    assert client.get(f"/api/reading/{other_case.pk}/series/{handle}/volume").status_code == 404
    assert client.get(f"/api/reading/{mine.pk}/series/0123456789abcdef/volume").status_code == 404
    # the old series-keyed endpoint is gone
    series = Series.objects.filter(case_id=mine.case_id).first()
    assert client.get(f"/api/reading/series/{series.pk}/volume").status_code == 404


def test_a_reader_in_the_washout_fetches_no_volume(client, study_setup, reader, coordinator):
    study = study_setup["study"]
    client.force_login(reader)
    first = selectors.worklist(study, reader, 1).first()
    exam1_url = client.get(f"/api/reading/{first.pk}/").json()["series"][0]["volume_url"]
    assert client.get(exam1_url).status_code == 200
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    # the washout: exam 1 is finished, exam 2 not yet open -> no volume of any exam, no case payload
    exam2 = selectors.worklist(study, reader, 2).get(case_id=first.case_id)
    assert client.get(exam1_url).status_code == 403
    assert client.get(f"/api/reading/{exam2.pk}/").status_code == 403
    handles = [h for h in _handles_of(exam2)]
    for handle in handles:
        assert client.get(f"/api/reading/{exam2.pk}/series/{handle}/volume").status_code == 403
    services.washout_override(study=study, reader=reader, by=coordinator, reason="test")
    payload = client.get(f"/api/reading/{exam2.pk}/").json()
    assert client.get(payload["series"][0]["volume_url"]).status_code == 200
    assert client.get(exam1_url).status_code == 403               # exam 1 stays closed for good


def _handles_of(assignment) -> list[str]:
    """The handles the server would give this assignment's series (the payload is refused in the washout)."""
    from reader_study import payloads

    return [payloads.series_handle(assignment.pk, s.pk) for s in selectors.case_series(assignment.case_id)]


def _without_csrf_token(content: bytes) -> bytes:
    """The page with its CSRF token (masked afresh on every response: it says nothing about the item) blanked."""
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b'name="csrfmiddlewaretoken" value=""', content)


def test_a_locked_descriptor_item_answers_exactly_like_a_missing_one(client, study_setup, reader,
                                                                     other_reader):
    """During exam 1 the descriptor task (leiomyomas only) is locked: 403 for one's own items against 404
    for others' would count the leiomyomas. Every endpoint answers the same for both."""
    study = study_setup["study"]
    client.force_login(reader)
    mine = selectors.worklist(study, reader, DESCRIPTORS).first()
    theirs = selectors.worklist(study, other_reader, DESCRIPTORS).first()
    missing = Assignment.objects.order_by("-pk").first().pk + 1000
    for pk_mine, pk_other in ((mine.pk, theirs.pk), (mine.pk, missing)):
        for method, path, body in (("get", "/api/reading/descriptors/{}/", None),
                                   ("post", "/api/reading/descriptors/{}/time/", {"seconds": 5}),
                                   ("post", "/api/reading/descriptors/{}/score/",
                                    {"degeneration": True, "irregular_margin": False}),
                                   ("get", "/descriptors/{}/", None)):
            answers = []
            for pk in (pk_mine, pk_other):
                kwargs = {"data": body, "content_type": "application/json"} if body else {}
                response = getattr(client, method)(path.format(pk), **kwargs)
                answers.append((response.status_code, _without_csrf_token(
                    response.content.replace(str(pk).encode(), b"<pk>"))))
            assert answers[0] == answers[1], (method, path)
            assert answers[0][0] == 404
    handle = _handles_of(mine)[0]
    assert client.get(f"/api/reading/{mine.pk}/series/{handle}/volume").status_code == 404
    assert client.get(f"/api/reading/{theirs.pk}/series/{handle}/volume").status_code == 404
