"""A stale study's way back (issue 13): adopting the corrected ground truth re-freezes it, audited; and a study
holding a case held for import review does not open. All data SYNTHETIC."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from core.constants import LEIOMYOMA, SARCOMA
from factories_reader_study import case_with_series
from imaging.models import Case, CaseAudit
from imaging.services import case_correct_truth
from reader_study import services
from reader_study.freezes import truth_drift
from reader_study.models import StudyCaseTruth

pytestmark = pytest.mark.django_db


@pytest.fixture
def stale(study_setup, coordinator):
    """The open study with its first leiomyoma corrected to sarcoma (myxoid) after it opened: stale."""
    study, case = study_setup["study"], study_setup["cases"][1]
    case_correct_truth(case=case, truth=SARCOMA, subtype="myxoid", reason="pathology revised", by=coordinator)
    study.refresh_from_db()
    assert study.stale_since is not None
    return {**study_setup, "study": study, "case": case}


def test_adopting_refreezes_the_corrected_cases_clears_stale_and_audits_each(stale, coordinator):
    study, case = stale["study"], stale["case"]
    assert [d.pseudonym for d in truth_drift(study)] == [case.pseudonym]
    changed = services.study_truth_adopt(study=study, by=coordinator, reason="the revised pathology is the reference")
    assert [(d.case_id, d.frozen_truth, d.truth) for d in changed] == [(case.pk, LEIOMYOMA, SARCOMA)]
    study.refresh_from_db()
    assert study.stale_since is None and study.stale_reason == ""
    row = StudyCaseTruth.objects.get(study=study, case=case)
    assert (row.truth, row.subtype) == (SARCOMA, "myxoid")
    assert StudyCaseTruth.objects.filter(study=study, truth=LEIOMYOMA).count() == 2   # the others unchanged
    audit = case.audit.filter(action=CaseAudit.Action.CORRECTED).latest("at")
    assert audit.before == {"study": study.name, "truth": LEIOMYOMA, "subtype": ""}
    assert audit.after == {"study": study.name, "truth": SARCOMA, "subtype": "myxoid"}
    assert audit.actor == coordinator and audit.reason == "the revised pathology is the reference"
    assert study.events.filter(action="truth_adopted").get().detail["cases"] == 1
    assert truth_drift(study) == []


def test_the_adoption_is_in_the_studys_case_audit_export(stale, coordinator):
    from analysis.selectors import case_audit_for_export

    services.study_truth_adopt(study=stale["study"], by=coordinator, reason="revised")
    lines = [line for line in case_audit_for_export(stale["study"]) if line["after"].get("study")]
    assert [(line["action"], line["before"]["truth"], line["after"]["truth"]) for line in lines] == [
        ("corrected", LEIOMYOMA, SARCOMA)]


def test_adopting_needs_a_reason_a_coordinator_and_a_stale_study(stale, coordinator, reader):
    study = stale["study"]
    with pytest.raises(ValidationError) as err:
        services.study_truth_adopt(study=study, by=coordinator, reason="  ")
    assert "reason" in err.value.message_dict
    with pytest.raises(PermissionDenied):
        services.study_truth_adopt(study=study, by=reader, reason="I am a reader")
    study.refresh_from_db()
    assert study.stale_since is not None
    assert StudyCaseTruth.objects.get(study=study, case=stale["case"]).truth == LEIOMYOMA
    services.study_truth_adopt(study=study, by=coordinator, reason="revised")
    with pytest.raises(ValidationError) as err:
        services.study_truth_adopt(study=study, by=coordinator, reason="again")
    assert "not stale" in str(err.value)


def test_the_adopt_page_lists_the_changes_and_adopts_for_a_coordinator(stale, coordinator, client):
    study, case = stale["study"], stale["case"]
    client.force_login(coordinator)
    detail = client.get(reverse("reader_study:study_detail", args=[study.pk])).content.decode()
    url = reverse("reader_study:study_truth_adopt", args=[study.pk])
    assert "Adopt the corrected ground truth" in detail and url in detail
    page = client.get(url)
    assert page.status_code == 200 and case.pseudonym in page.content.decode()
    refused = client.post(url, {"reason": ""})
    assert refused.status_code == 200 and "say why the corrected truth" in refused.content.decode()
    response = client.post(url, {"reason": "revised pathology"})
    assert response.status_code == 302 and response.url == reverse("reader_study:study_detail", args=[study.pk])
    page = client.get(response.url).content.decode()
    assert "Adopted the corrected ground truth of 1 case(s)" in page and "stale-banner" not in page


def test_readers_cannot_use_the_adopt_page(stale, reader, client):
    client.force_login(reader)
    url = reverse("reader_study:study_truth_adopt", args=[stale["study"].pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "x"}).status_code == 403
    stale["study"].refresh_from_db()
    assert stale["study"].stale_since is not None


def test_a_study_holding_a_case_held_for_review_does_not_open(coordinator, reader):
    cases = [case_with_series(truth=SARCOMA, seed=1), case_with_series(truth=LEIOMYOMA, seed=2)]
    study = services.study_create(name="Held (synthetic)", created_by=coordinator, cases=cases, readers=[reader])
    Case.objects.filter(pk=cases[1].pk).update(review_reason="different sex than the existing case")
    with pytest.raises(ValidationError) as err:
        services.study_open(study=study, by=coordinator)
    assert cases[1].pseudonym in str(err.value) and cases[0].pseudonym not in str(err.value)
    study.refresh_from_db()
    assert study.status == study.Status.DRAFT and not study.assignments.exists()
