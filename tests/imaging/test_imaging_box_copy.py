"""METHOD §3 (issue 14, item 8): the coordinator copies one slice's box to the series' other tumour slices,
through box_save (audited per box; a reason on a frozen case). All data SYNTHETIC."""

import pytest
from django.core.exceptions import ValidationError

from core.constants import LEIOMYOMA
from factories_imaging import make_synthetic_case
from imaging import services
from imaging.models import CaseAudit, Cohort, CohortCase, TumourBox

pytestmark = pytest.mark.django_db


def _boxed_series(coordinator, boxed=(2, 5)):
    case = make_synthetic_case(LEIOMYOMA, prefix="C-CPY")
    series = case.series.create(series_uid=f"2.25.{case.pk}07", series_number=7, mapped_code="T2axi",
                                n_slices=9, rows=16, cols=16)
    for k in boxed:
        services.box_save(series=series, slice_index=k, x0=1 + k, y0=2, x1=9 + k, y1=10, user=coordinator)
    return series


def _boxes(series):
    return {b.slice_index: (b.x0, b.y0, b.x1, b.y1) for b in TumourBox.objects.filter(series=series)}


def test_the_box_fills_the_unboxed_slices_between_the_first_and_last_boxed_slice_and_is_audited_per_box(coordinator):
    series = _boxed_series(coordinator, boxed=(2, 5))
    added_before = series.case.audit.filter(action=CaseAudit.Action.BOX_ADDED).count()
    copied = services.box_copy_to_tumour_slices(series=series, slice_index=2, user=coordinator)
    assert [b.slice_index for b in copied] == [3, 4]
    boxes = _boxes(series)
    assert sorted(boxes) == [2, 3, 4, 5]                      # slices 0-1 and 6-8 are not tumour slices
    assert boxes[3] == boxes[4] == boxes[2] and boxes[5] == (6, 2, 14, 10)   # an existing box is kept
    assert series.case.audit.filter(action=CaseAudit.Action.BOX_ADDED).count() == added_before + 2


def test_nothing_to_copy_and_a_slice_without_a_box_are_refused_with_a_reason(coordinator):
    series = _boxed_series(coordinator, boxed=(4,))
    with pytest.raises(ValidationError, match="no tumour slice without a box"):
        services.box_copy_to_tumour_slices(series=series, slice_index=4, user=coordinator)
    with pytest.raises(ValidationError, match="slice 6 has no box"):
        services.box_copy_to_tumour_slices(series=series, slice_index=6, user=coordinator)


def test_on_a_frozen_case_the_copy_needs_a_reason_and_copies_nothing_without_one(coordinator):
    series = _boxed_series(coordinator, boxed=(1, 4))
    cohort = Cohort.objects.create(name="copy-frozen", frozen=True)
    CohortCase.objects.create(cohort=cohort, case=series.case, truth=series.case.truth)
    with pytest.raises(ValidationError):
        services.box_copy_to_tumour_slices(series=series, slice_index=1, user=coordinator)
    assert sorted(_boxes(series)) == [1, 4]
    services.box_copy_to_tumour_slices(series=series, slice_index=4, user=coordinator, reason="same lesion")
    assert sorted(_boxes(series)) == [1, 2, 3, 4]
    reasons = series.case.audit.filter(action=CaseAudit.Action.BOX_ADDED, reason="same lesion")
    assert reasons.count() == 2


def test_the_api_copies_for_coordinators_only_and_the_series_page_has_the_button(coordinator, reader, client):
    series = _boxed_series(coordinator, boxed=(0, 3))
    url = f"/api/series/{series.pk}/boxes/copy/"
    client.force_login(reader)
    assert client.post(f"{url}?slice_index=0", {}, content_type="application/json").status_code in (403, 404)
    client.force_login(coordinator)
    response = client.post(f"{url}?slice_index=0", {}, content_type="application/json")
    assert response.status_code == 201
    assert [b["slice_index"] for b in response.json()] == [1, 2]
    refused = client.post(f"{url}?slice_index=0", {}, content_type="application/json")
    assert refused.status_code == 400 and "no tumour slice without a box" in str(refused.json())
    assert client.post(f"{url}?slice_index=x", {}, content_type="application/json").status_code == 400
    page = client.get(f"/imaging/series/{series.pk}/").content.decode()
    assert 'id="copy-box-all"' in page and "Copy this box to every tumour slice of the series" in page
    assert f'data-boxes-copy="{url}"' in page
