"""The admin and frozen cases (issue 13): read-only frozen fields with a note naming what freezes the case, no
false "changed successfully" for a refused edit, no deleting a frozen case or its series and boxes; stale marks
and the study's cases picker. All data SYNTHETIC."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from core.constants import LEIOMYOMA, SARCOMA
from factories_imaging import make_synthetic_case
from imaging import services
from imaging.models import Case, Cohort, CohortCase, TumourBox
from reader_study.models import Study

pytestmark = pytest.mark.django_db


def make_case(truth=LEIOMYOMA, **extra) -> Case:
    return make_synthetic_case(truth, prefix="C-ADM", **extra)


@pytest.fixture
def world(coordinator):
    """A SYNTHETIC boxed case frozen in the built cohort "site-a", and an unfrozen one."""
    case = make_case(subtype="cellular")
    series = case.series.create(series_uid=f"2.25.{case.pk}01", series_number=1, mapped_code="T2axi",
                                n_slices=4, rows=16, cols=16)
    services.box_save(series=series, slice_index=1, x0=1, y0=1, x1=5, y1=5, user=coordinator)
    cohort = Cohort.objects.create(name="site-a", frozen=True)
    CohortCase.objects.create(cohort=cohort, case=case, truth=case.truth)
    return {"case": case, "series": series, "box": series.boxes.get(), "cohort": cohort, "free": make_case()}


def _case_post(case, series, **values):
    data = {"truth": case.truth, "subtype": case.subtype, "institution": "", "length_mm": "", "width_mm": "",
            "height_mm": "", "degeneration": "unknown", "irregular_margin": "unknown",
            "series-TOTAL_FORMS": "1", "series-INITIAL_FORMS": "1", "series-MIN_NUM_FORMS": "0",
            "series-MAX_NUM_FORMS": "1000", "series-0-id": str(series.pk), "series-0-case": str(case.pk),
            "series-0-override_code": "", "audit-TOTAL_FORMS": "0", "audit-INITIAL_FORMS": "0",
            "audit-MIN_NUM_FORMS": "0", "audit-MAX_NUM_FORMS": "1000"}
    return {**data, **values}


def test_a_frozen_case_form_shows_truth_read_only_with_a_note_and_the_correction_link(world, admin_user, client):
    case = world["case"]
    client.force_login(admin_user)
    page = client.get(f"/admin/imaging/case/{case.pk}/change/").content.decode()
    assert "is frozen by cohort site-a" in page
    assert reverse("imaging_case_correct", args=[case.pk]) in page and "Correct this case" in page
    assert 'name="truth"' not in page and 'name="subtype"' not in page
    assert 'name="series-0-override_code"' not in page   # its series are read-only too
    free = client.get(f"/admin/imaging/case/{world['free'].pk}/change/").content.decode()
    assert 'name="truth"' in free and "is frozen by" not in free


def test_a_refused_admin_edit_changes_nothing_and_never_claims_success(world, admin_user, client):
    case = world["case"]
    client.force_login(admin_user)
    response = client.post(f"/admin/imaging/case/{case.pk}/change/",
                           _case_post(case, world["series"], truth=SARCOMA, institution="B"), follow=True)
    text = response.content.decode()
    case.refresh_from_db()
    assert case.truth == LEIOMYOMA and case.institution == "B"   # the other descriptors stay editable
    assert "cohort site-a" in text and "changed successfully" not in text
    entry = LogEntry.objects.filter(object_id=str(case.pk)).latest("action_time")
    assert entry.get_change_message().startswith("Refused")


def test_an_unrefused_edit_still_says_it_was_changed(world, admin_user, client):
    free = world["free"]
    series = free.series.create(series_uid=f"2.25.{free.pk}01", series_number=1, mapped_code="T2axi")
    client.force_login(admin_user)
    response = client.post(f"/admin/imaging/case/{free.pk}/change/",
                           _case_post(free, series, truth=SARCOMA), follow=True)
    free.refresh_from_db()
    assert free.truth == SARCOMA and "changed successfully" in response.content.decode()


def test_a_frozen_case_its_series_and_boxes_cannot_be_deleted(world, admin_user, client):
    client.force_login(admin_user)
    for url in (f"/admin/imaging/case/{world['case'].pk}/delete/",
                f"/admin/imaging/series/{world['series'].pk}/delete/",
                f"/admin/imaging/tumourbox/{world['box'].pk}/delete/"):
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"post": "yes"}).status_code == 403, url
    assert Case.objects.filter(pk=world["case"].pk).exists() and TumourBox.objects.filter(pk=world["box"].pk).exists()
    assert client.get(f"/admin/imaging/case/{world['free'].pk}/delete/").status_code == 200


def test_a_frozen_case_series_and_box_pages_are_read_only_with_the_note(world, admin_user, client):
    client.force_login(admin_user)
    series_page = client.get(f"/admin/imaging/series/{world['series'].pk}/change/").content.decode()
    assert "is frozen by cohort site-a" in series_page and 'name="override_code"' not in series_page
    assert 'name="boxes-0-x0"' not in series_page
    box_page = client.get(f"/admin/imaging/tumourbox/{world['box'].pk}/change/").content.decode()
    assert "is frozen by cohort site-a" in box_page and 'name="x0"' not in box_page


def test_stale_marks_are_read_only_in_the_admin(world, admin_user, client, rf):
    from django.contrib import admin

    from inference.models import Evaluation

    request = rf.get("/admin/")
    request.user = admin_user
    for model in (Cohort, Evaluation, Study):
        readonly = admin.site._registry[model].get_readonly_fields(request)
        assert {"stale_since", "stale_reason"} <= set(readonly), model
    study = Study.objects.create(name="Stale study")
    client.force_login(admin_user)
    for url in (f"/admin/imaging/cohort/{world['cohort'].pk}/change/", f"/admin/reader_study/study/{study.pk}/change/"):
        page = client.get(url).content.decode()
        assert "field-stale_reason" in page and 'name="stale_reason"' not in page, url


def test_the_study_cases_picker_offers_usable_cases_only(world, admin_user, client):
    held = make_case(review_reason="different sex than the existing case")
    client.force_login(admin_user)
    page = client.get("/admin/reader_study/study/add/").content.decode()
    assert world["free"].pseudonym in page and held.pseudonym not in page
