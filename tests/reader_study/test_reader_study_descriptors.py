"""The leiomyoma descriptor task: its own worklist after exam 2, and the k-of-n consensus onto the cases."""

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from core.constants import LEIOMYOMA, SARCOMA
from factories_reader_study import answer_all, case_with_series, open_study
from imaging.models import Case
from reader_study import selectors, services
from reader_study.models import DESCRIPTORS, Assignment, DescriptorScore, StudyEvent
from reader_study.serializers import ReadingPayloadSerializer

pytestmark = pytest.mark.django_db


def _finish_both_exams(reader, study, coordinator):
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    services.washout_override(study=study, reader=reader, by=coordinator, reason="test")
    answer_all(reader, study, 2)
    services.exam_finish(reader=reader, study=study, exam=2)


def test_the_descriptor_worklist_holds_only_the_leiomyomas_under_their_own_codes(study_setup, reader):
    study = study_setup["study"]
    items = list(selectors.worklist(study, reader, DESCRIPTORS))
    leiomyomas = {c.pk for c in study_setup["cases"] if c.truth == LEIOMYOMA}
    assert {i.case_id for i in items} == leiomyomas and len(items) == 3
    assert all(i.display_code.startswith("D-") for i in items)


def test_the_task_opens_only_after_exam2_and_hides_its_size_until_then(study_setup, reader, coordinator,
                                                                         client):
    study = study_setup["study"]
    item = selectors.worklist(study, reader, DESCRIPTORS).first()
    status = selectors.exam_status(study, reader, DESCRIPTORS)
    assert status.state == "locked" and status.total == 0
    assert selectors.exam_status(study, reader, DESCRIPTORS, for_coordinator=True).total == 3
    with pytest.raises(PermissionDenied, match="finished exam 2"):
        services.descriptor_score_submit(reader=reader, assignment=item, degeneration=True,
                                         irregular_margin=False)
    client.force_login(reader)
    assert client.get(f"/api/reading/descriptors/{item.pk}/").status_code == 404  # locked: as if missing
    _finish_both_exams(reader, study, coordinator)
    assert selectors.exam_status(study, reader, DESCRIPTORS).state == "open"
    payload = client.get(f"/api/reading/descriptors/{item.pk}/").json()
    assert payload["display_code"] == item.display_code and "ai" not in payload and payload["series"]
    assert "descriptors" in client.get(f"/descriptors/{item.pk}/").content.decode()


def test_scores_are_stored_once_changes_are_logged(study_setup, reader, coordinator, client):
    study = study_setup["study"]
    _finish_both_exams(reader, study, coordinator)
    item = selectors.worklist(study, reader, DESCRIPTORS).first()
    client.force_login(reader)
    for degeneration in (True, True, False):
        response = client.post(f"/api/reading/descriptors/{item.pk}/score/",
                               {"degeneration": degeneration, "irregular_margin": False},
                               content_type="application/json")
        assert response.status_code == 200
    score = DescriptorScore.objects.get(assignment=item)
    assert (score.assignment.reader, score.assignment.case_id, score.degeneration) == (reader, item.case_id, False)
    sent = client.get(f"/api/reading/descriptors/{item.pk}/").json()       # sent without the serializer
    assert sent["score"] == {"degeneration": False, "irregular_margin": False}
    assert sent == json.loads(json.dumps(ReadingPayloadSerializer(sent).data))
    assert StudyEvent.objects.filter(study=study, action="descriptor_scored").count() == 2
    with pytest.raises(ValidationError):
        services.descriptor_score_submit(reader=reader, assignment=item, degeneration="yes",
                                         irregular_margin=False)


def test_four_of_six_consensus_is_written_onto_the_cases(coordinator, make_user):
    readers = [make_user("reader") for _ in range(6)]
    cases = [case_with_series(truth=LEIOMYOMA, n_slices=2, size=8) for _ in range(3)]
    sarcoma = case_with_series(truth=SARCOMA, n_slices=2, size=8)
    study = open_study(coordinator=coordinator, readers=readers, cases=[*cases, sarcoma])
    # degeneration yes-votes per case: 4 (yes), 3 of 6 (no), 2 with 2 readers still to score (undecided)
    votes = {cases[0].pk: [1, 1, 1, 1, 0, 0], cases[1].pk: [1, 1, 1, 0, 0, 0], cases[2].pk: [1, 1, 0, 0]}
    for case_pk, row in votes.items():
        for reader, vote in zip(readers, row, strict=False):
            item = Assignment.objects.get(study=study, reader=reader, exam=DESCRIPTORS, case_id=case_pk)
            DescriptorScore.objects.create(assignment=item, degeneration=bool(vote), irregular_margin=False)
    summary = services.descriptor_consensus_apply(study=study, by=coordinator)
    assert summary == {"k": 4, "n": 6, "cases": 3, "written": 5, "undecided": 1}
    got = {c.pk: (c.degeneration, c.irregular_margin) for c in Case.objects.filter(pk__in=votes)}
    assert got[cases[0].pk] == (True, False) and got[cases[1].pk] == (False, False)
    assert got[cases[2].pk] == (None, False)          # degeneration undecided; irregular margin 0 of 4 → no
    assert Case.objects.get(pk=sarcoma.pk).degeneration is None
    assert StudyEvent.objects.get(study=study, action="descriptor_consensus").detail["written"] == 5


def test_consensus_needs_k_readers(study_setup, coordinator):
    with pytest.raises(ValidationError, match="needs at least 4 enrolled readers"):
        services.descriptor_consensus_apply(study=study_setup["study"], by=coordinator)


def test_each_task_is_read_at_its_own_urls_and_carries_only_its_own_answer(study_setup, reader, coordinator,
                                                                           client):
    """The descriptor task's cases live in Assignment beside the exams' but are reached only at the descriptor
    URLs (and exam cases only at the exam URLs); a case's payload holds its own task's answer, never a read."""
    study = study_setup["study"]
    _finish_both_exams(reader, study, coordinator)
    item = selectors.worklist(study, reader, DESCRIPTORS).first()
    exam_case = selectors.worklist(study, reader, 2).first()
    client.force_login(reader)
    for url in (f"/reading/{item.pk}/", f"/api/reading/{item.pk}/", f"/descriptors/{exam_case.pk}/",
                f"/api/reading/descriptors/{exam_case.pk}/"):
        assert client.get(url).status_code == 404, url
    for url, body in ((f"/api/reading/{item.pk}/time/", {"seconds": 3}),
                      (f"/api/reading/{item.pk}/read/", {"call": SARCOMA, "confidence": 50}),
                      (f"/api/reading/descriptors/{exam_case.pk}/score/", {"degeneration": True,
                                                                          "irregular_margin": True})):
        assert client.post(url, body, content_type="application/json").status_code == 404, url
    with pytest.raises(ValidationError, match="descriptor task"):
        services.read_submit(reader=reader, assignment=item, call=SARCOMA, confidence=50)
    client.post(f"/api/reading/descriptors/{item.pk}/score/", {"degeneration": True, "irregular_margin": True},
                content_type="application/json")
    payload = client.get(f"/api/reading/descriptors/{item.pk}/").json()
    assert payload["score"] == {"degeneration": True, "irregular_margin": True}
    assert "read" not in payload and "ai" not in payload
    assert payload["urls"]["submit"] == f"/api/reading/descriptors/{item.pk}/score/"
    assert payload["urls"]["worklist"] == f"/studies/{study.pk}/descriptors/"
    worklist = client.get(f"/api/reading/studies/{study.pk}/descriptors/").json()
    assert [i["answered"] for i in worklist["items"] if i["assignment"] == item.pk] == [True]
    assert worklist["exam"]["state"] == "open" and worklist["exam"]["done"] == 1
