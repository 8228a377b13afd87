"""Frozen stays frozen (issue 13): what freezes a case, the refusals, the audited correction, the audit trail.

All data SYNTHETIC."""

import pytest
from django.core.exceptions import ValidationError

from core.constants import LEIOMYOMA, SARCOMA
from factories_imaging import make_synthetic_case
from imaging import frozen, services
from imaging.models import Case, CaseAudit, Cohort, CohortCase, TumourBox
from inference.models import CaseAIResult, Evaluation
from reader_study.models import Study
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def make_case(truth=LEIOMYOMA, **extra) -> Case:
    return make_synthetic_case(truth, prefix="C-FRZ", **extra)


def make_cohort(name, cases, *, frozen_=True) -> Cohort:
    cohort = Cohort.objects.create(name=name, frozen=frozen_)
    for case in cases:
        CohortCase.objects.create(cohort=cohort, case=case, truth=case.truth)
    return cohort


def make_study(name, cases, status=Study.Status.OPEN, cohort=None) -> Study:
    study = Study.objects.create(name=name, status=status, cohort=cohort)
    study.cases.set(cases)
    return study


def test_frozen_by_names_built_cohorts_and_non_draft_studies():
    a, b, c, d = (make_case() for _ in range(4))
    make_cohort("pilot-1", [a, b])
    make_cohort("not-frozen", [c], frozen_=False)
    make_study("Open study", [b, c])
    make_study("Draft study", [d], status=Study.Status.DRAFT)
    make_study("Closed study", [d], status=Study.Status.CLOSED)
    found = frozen.frozen_by([a.pk, b.pk, c.pk, d.pk])
    assert found == {a.pk: ["cohort pilot-1"], b.pk: ["cohort pilot-1", "study Open study"],
                     c.pk: ["study Open study"], d.pk: ["study Closed study"]}
    assert frozen.is_frozen(a) and frozen.is_frozen(d.pk)
    assert frozen.frozen_by([]) == {}


def test_a_case_nothing_freezes_is_not_frozen():
    e = make_case(truth="")
    make_study("Draft only", [e], status=Study.Status.DRAFT)
    assert not frozen.is_frozen(e)
    assert frozen.frozen_by([e.pk]) == {}
    frozen.refuse_if_frozen(e)   # nothing raised


def test_refuse_if_frozen_names_what_freezes_the_case():
    a = make_case(truth=SARCOMA)
    make_cohort("site-a", [a])
    with pytest.raises(ValidationError) as err:
        frozen.refuse_if_frozen(a, "changed by a manifest")
    assert "cohort site-a" in str(err.value) and a.pseudonym in str(err.value)


# --- refusals, the correction, the audit trail --------------------------------------------------------------

def with_series(case, *, slices=4, size=16):
    n = case.series.count() + 1
    return case.series.create(series_uid=f"2.25.{case.pk}0{n}", series_number=n, mapped_code="T2axi",
                              n_slices=slices, rows=size, cols=size)


@pytest.fixture
def frozen_world(coordinator):
    """A SYNTHETIC leiomyoma case with a boxed series, frozen in cohort "site-a"; a training run and an
    evaluation on the cohort; an open study on the cohort; plus an unfrozen case."""
    case = make_case(truth=LEIOMYOMA, subtype="cellular")
    series = with_series(case)
    services.box_save(series=series, slice_index=1, x0=1, y0=1, x1=5, y1=5, user=coordinator)
    cohort = make_cohort("site-a", [case])
    run = TrainingRun.objects.create(name="run-a", cohort=cohort, config={})
    evaluation = Evaluation.objects.create(name="eval-a", training_run=run, status=Evaluation.Status.DONE)
    other_eval = Evaluation.objects.create(name="eval-b", status=Evaluation.Status.DONE)
    CaseAIResult.objects.create(evaluation=other_eval, case=case, likelihood=10.0, subset=[], per_sequence={})
    study = make_study("Study A", [case], cohort=cohort)
    return {"case": case, "series": series, "cohort": cohort, "evaluation": evaluation, "other_eval": other_eval,
            "study": study, "free": make_case(truth="")}


def test_services_refuse_to_change_a_frozen_case_naming_the_cohort_and_study(frozen_world, coordinator):
    case, series = frozen_world["case"], frozen_world["series"]
    for change in (lambda: services.case_update(case=case, truth=SARCOMA, by=coordinator),
                   lambda: services.case_update(case=case, subtype="myxoid", by=coordinator),
                   lambda: services.box_save(series=series, slice_index=2, x0=0, y0=0, x1=4, y1=4, user=coordinator),
                   lambda: services.box_delete(series=series, slice_index=1, user=coordinator),
                   lambda: services.series_override_set(series=series, code="T2sag", user=coordinator)):
        with pytest.raises(ValidationError) as err:
            change()
        assert "cohort site-a" in str(err.value) and "study Study A" in str(err.value)
    case.refresh_from_db()
    assert (case.truth, case.subtype) == (LEIOMYOMA, "cellular")
    assert TumourBox.objects.filter(series=series).count() == 1
    # the other descriptors stay editable, and are audited
    services.case_update(case=case, length_mm=42.0, truth=LEIOMYOMA, by=coordinator)
    assert case.audit.filter(action=CaseAudit.Action.DETAILS).exists()


def test_the_case_page_form_and_the_boxes_api_refuse_naming_the_cohort(frozen_world, coordinator, client):
    case, series = frozen_world["case"], frozen_world["series"]
    client.force_login(coordinator)
    page = client.get(f"/imaging/cases/{case.pk}/")
    assert page.status_code == 200 and b"cohort site-a" in page.content
    assert b"case-audit-table" in page.content and b"box added" in page.content
    # a tampered POST of a disabled field changes nothing
    client.post(f"/imaging/cases/{case.pk}/", {"truth": SARCOMA, "subtype": "myxoid", "institution": ""})
    case.refresh_from_db()
    assert (case.truth, case.subtype) == (LEIOMYOMA, "cellular")
    response = client.post(f"/api/series/{series.pk}/boxes/", {"slice_index": 2, "x0": 0, "y0": 0, "x1": 4, "y1": 4},
                           content_type="application/json")
    assert response.status_code == 400 and "cohort site-a" in response.json()["detail"]
    response = client.delete(f"/api/series/{series.pk}/boxes/?slice_index=1")
    assert response.status_code == 400 and "cohort site-a" in response.json()["detail"]
    response = client.post(f"/imaging/series/{series.pk}/override/", {"override_code": "T2sag"}, follow=True)
    assert "cohort site-a" in response.content.decode()
    series.refresh_from_db()
    assert series.override_code == ""


def test_a_box_of_a_frozen_case_is_corrected_with_a_reason_and_marks_what_is_built_on_it_stale(
        frozen_world, coordinator, client):
    series, cohort = frozen_world["series"], frozen_world["cohort"]
    client.force_login(coordinator)
    page = client.get(f"/imaging/series/{series.pk}/").content.decode()
    assert 'id="correction-reason"' in page and "cohort site-a" in page
    url = f"/api/series/{series.pk}/boxes/"
    box = {"slice_index": 2, "x0": 0, "y0": 0, "x1": 4, "y1": 4}
    refused = client.post(url, {**box, "reason": "  "}, content_type="application/json")
    assert refused.status_code == 400 and "give the reason" in refused.json()["detail"]
    response = client.post(url, {**box, "reason": "box missed the lower pole"}, content_type="application/json")
    assert response.status_code == 201 and "reason" not in response.json()
    cohort.refresh_from_db()
    assert cohort.stale_since and "box drawn on slice 3" in cohort.stale_reason
    assert "box missed the lower pole" in frozen_world["study"].__class__.objects.get(
        pk=frozen_world["study"].pk).stale_reason
    response = client.delete(f"{url}?slice_index=1", {"reason": "wrong slice"}, content_type="application/json")
    assert response.status_code == 204
    reasons = dict(frozen_world["case"].audit.filter(action__in=[CaseAudit.Action.BOX_ADDED,
                   CaseAudit.Action.BOX_REMOVED]).exclude(reason="").values_list("action", "reason"))
    assert reasons == {"box_added": "box missed the lower pole", "box_removed": "wrong slice"}
    assert sorted(TumourBox.objects.filter(series=series).values_list("slice_index", flat=True)) == [2]


def test_a_manifest_leaves_a_frozen_case_truth_and_boxes_alone(frozen_world, settings):
    from imaging import importer_manifest

    case = frozen_world["case"]
    settings.PSEUDONYM_KEY = "k" * 32
    key_hash = services.source_key_hash("SYNTH-000001")
    type(case).objects.filter(pk=case.pk).update(source_key_hash=key_hash)
    parsed = importer_manifest.Parsed(rows=[importer_manifest.ManifestRow(
        line=2, patient_key="SYNTH-000001", values={"truth": SARCOMA, "subtype": "myxoid", "institution": "B"})])
    report = services.manifest_apply(parsed=parsed)
    case.refresh_from_db()
    assert (case.truth, case.subtype, case.institution) == (LEIOMYOMA, "cellular", "B")
    assert "cohort site-a" in report["frozen_refused"][0]


def test_the_correction_changes_truth_audits_it_and_marks_everything_built_on_it_stale(frozen_world, coordinator):
    case = frozen_world["case"]
    with pytest.raises(ValidationError):
        services.case_correct_truth(case=case, truth=SARCOMA, reason="  ", by=coordinator)
    result = services.case_correct_truth(case=case, truth=SARCOMA, reason="pathology report revised",
                                         by=coordinator)
    assert result.affected == ["cohort site-a", "evaluation eval-a", "evaluation eval-b", "study Study A"]
    case.refresh_from_db()
    assert case.truth == SARCOMA
    audit = case.audit.get(action=CaseAudit.Action.CORRECTED)
    assert audit.before == {"truth": LEIOMYOMA} and audit.after["truth"] == SARCOMA
    assert audit.actor == coordinator and audit.reason == "pathology report revised"
    assert audit.after["affected"] == result.affected
    for obj in (frozen_world["cohort"], frozen_world["evaluation"], frozen_world["other_eval"], frozen_world["study"]):
        obj.refresh_from_db()
        assert obj.stale_since is not None and "pathology report revised" in obj.stale_reason
    # the cohort keeps the truth it froze; the study keeps the truth frozen with it
    assert frozen_world["cohort"].members.get().truth == LEIOMYOMA
    assert frozen_world["study"].frozen_truths.get(case=case).truth == LEIOMYOMA
    # the evaluation's per-case table keeps the truth it was computed with
    from inference.selectors import case_result_table

    evaluation = frozen_world["evaluation"]
    CaseAIResult.objects.create(evaluation=evaluation, case=case, likelihood=80.0, subset=[], per_sequence={})
    [row] = case_result_table(evaluation)["rows"]
    assert row["truth"] == LEIOMYOMA and row["missed"] is True
    [row] = case_result_table(frozen_world["other_eval"])["rows"]  # no cohort: the case's own truth
    assert row["truth"] == SARCOMA


def test_replacing_series_takes_them_off_the_case_with_their_boxes(frozen_world, coordinator):
    case, series = frozen_world["case"], frozen_world["series"]
    intruder = with_series(case)
    result = services.case_replace_series(case=case, remove_series=[intruder], reason="site B's images",
                                          by=coordinator)
    assert list(case.series.all()) == [series]
    assert result.before["series"][0]["series"] == intruder.pk and "cohort site-a" in result.affected
    with pytest.raises(ValidationError):
        services.case_replace_series(case=case, remove_series=[with_series(frozen_world["free"])],
                                     reason="x", by=coordinator)


def test_the_correction_page_corrects_and_names_what_it_marked_stale(frozen_world, coordinator, client):
    case = frozen_world["case"]
    client.force_login(coordinator)
    assert client.get(f"/imaging/cases/{case.pk}/correct/").status_code == 200
    response = client.post(f"/imaging/cases/{case.pk}/correct/",
                           {"truth": SARCOMA, "subtype": "cellular", "reason": "histology revised"}, follow=True)
    text = response.content.decode()
    assert "marked stale" in text and "cohort site-a" in text and "study Study A" in text
    assert "histology revised" in text   # the audit table on the case page
    case.refresh_from_db()
    assert case.truth == SARCOMA
    cohorts = client.get("/imaging/cohorts/").content.decode()
    assert "rebuild needed" in cohorts
    from django.urls import reverse

    for url in (reverse("reader_study:study_detail", args=[frozen_world["study"].pk]),
                reverse("analysis_study", args=[frozen_world["study"].pk]),
                reverse("inference_evaluation", args=[frozen_world["evaluation"].pk])):
        page = client.get(url)
        assert page.status_code == 200 and "stale-banner" in page.content.decode(), url
    for url in (reverse("reader_study:study_list"), reverse("analysis_study_list"), reverse("inference_evaluations")):
        page = client.get(url)
        assert page.status_code == 200 and "stale: rebuild needed" in page.content.decode(), url


def test_a_reader_never_sees_the_case_audit(frozen_world, reader):
    from imaging import selectors

    assert not selectors.case_audit(reader, frozen_world["case"]).exists()


def test_the_admin_refuses_to_change_a_frozen_case_and_shows_its_audit(frozen_world, admin_user, client):
    from django.contrib.auth.models import Group

    from accounts.roles import ROLES

    for name in ROLES:
        Group.objects.get_or_create(name=name)
    case = frozen_world["case"]
    client.force_login(admin_user)
    page = client.get(f"/admin/imaging/case/{case.pk}/change/")
    assert page.status_code == 200 and b"box added" in page.content
    data = {"truth": SARCOMA, "subtype": "cellular", "institution": "", "length_mm": "", "width_mm": "",
            "height_mm": "", "degeneration": "unknown", "irregular_margin": "unknown",
            "series-TOTAL_FORMS": "1", "series-INITIAL_FORMS": "1", "series-MIN_NUM_FORMS": "0",
            "series-MAX_NUM_FORMS": "1000", "series-0-id": str(frozen_world["series"].pk),
            "series-0-case": str(case.pk), "series-0-override_code": "",
            "audit-TOTAL_FORMS": "0", "audit-INITIAL_FORMS": "0", "audit-MIN_NUM_FORMS": "0",
            "audit-MAX_NUM_FORMS": "1000"}
    response = client.post(f"/admin/imaging/case/{case.pk}/change/", data, follow=True)
    assert response.status_code == 200
    case.refresh_from_db()
    assert case.truth == LEIOMYOMA
    assert "cohort site-a" in response.content.decode()
