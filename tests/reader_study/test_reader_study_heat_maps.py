"""The AI's heat-maps reach readers in exam 2 only, exactly like the AI panel (issue 18, item 2; blinding, issue 12).

Maps are written straight into the evaluation's store (``inference.saliency_store``): what is tested here is who
gets them, not how they are computed (tests/inference/test_inference_saliency*.py)."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from core.constants import SEQUENCE_CODES
from factories_reader_study import answer_all, move_washout
from inference import selectors as inference_selectors
from inference.saliency_store import HELD_OUT, CaseMaps, write_case_maps
from reader_study import payloads, selectors, services
from reader_study.models import Study

pytestmark = pytest.mark.django_db

SIZE = 16
HEAT_MARKERS = ("heat_maps", "heat-maps", "heat-map", "Heat-map")


def _mapped_series(case):
    """The series the maps go on: T2sag, a sequence of the AI results' set (T2sag, DWI; factories)."""
    return next(s for s in case.series.order_by("pk") if s.sequence_code == "T2sag")


def write_maps(evaluation, case, *, slices=(0, 1), series=None) -> dict[int, np.ndarray]:
    """Maps for the T2sag series of ``case`` (or ``series``): a different pattern per slice; returns {series pk:
    maps}."""
    series = series or _mapped_series(case)
    n = len(slices)
    maps = (np.arange(n * SIZE * SIZE).reshape(n, SIZE, SIZE) % 251).astype(np.uint8)
    write_case_maps(inference_selectors.case_maps_path(evaluation.pk, case.pk), CaseMaps(
        maps=maps, crops=np.full_like(maps, 90), series_id=np.full(n, series.pk), slice_no=np.array(slices),
        sequence_idx=np.full(n, SEQUENCE_CODES.index(series.sequence_code)), window=np.array([[2, -3, 20]] * n),
        scale=0.5, models=("r0f0", "r1f0"), kind=HELD_OUT, crops_sha256="x"))
    return {series.pk: maps}


def _exam2_open(study, reader):
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=29)


def _with_maps(study_setup) -> dict[int, dict]:
    return {case.pk: write_maps(study_setup["evaluation"], case) for case in study_setup["cases"]}


def _decode(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


def test_exam1_carries_no_map_in_the_page_the_api_or_any_url(client, study_setup, reader):
    _with_maps(study_setup)
    client.force_login(reader)
    for a in selectors.worklist(study_setup["study"], reader, 1):
        payload = client.get(f"/api/reading/{a.pk}/").json()
        assert "heat_maps" not in payload
        html = client.get(f"/reading/{a.pk}/").content.decode()
        for text in (html, str(payload)):
            assert not any(marker in text for marker in HEAT_MARKERS)
        series_pk = _mapped_series(a.case).pk
        url = payloads.heat_map_url(a.pk, series_pk)     # the URL exam 2 would use, built for this assignment
        assert client.get(url).status_code == 404
        assert client.get(url).json() == client.get(f"/api/reading/{a.pk}/series/nothing/heat-maps").json()


def test_exam2_offers_the_maps_of_the_case_and_serves_them_slice_by_slice(client, study_setup, reader):
    written = _with_maps(study_setup)
    study = study_setup["study"]
    _exam2_open(study, reader)
    client.force_login(reader)
    for a in selectors.worklist(study, reader, 2):
        heat = client.get(f"/api/reading/{a.pk}/").json()["heat_maps"]
        (series_pk, maps), = written[a.case_id].items()
        handle = payloads.series_handle(a.pk, series_pk)
        assert heat["default_on"] is False and list(heat["series"]) == [handle]
        assert [s["value"] for s in heat["legend"]] == [0.0, 0.25, 0.5, 0.75, 1.0] and heat["what"]
        served = client.get(heat["series"][handle])
        assert served.status_code == 200
        body = served.json()
        assert body["size"] == SIZE and len(body["colormap"]) == 256
        assert [s["slice"] for s in body["slices"]] == [0, 1]
        assert all(s["window"] == [2, -3, 20] for s in body["slices"])
        for i, one in enumerate(body["slices"]):
            np.testing.assert_array_equal(_decode(one["map"]), maps[i])
        html = client.get(f"/reading/{a.pk}/").content.decode()
        assert "heat-map" in html.lower()


def test_maps_follow_the_study_setting_and_the_cases_that_have_them(client, study_setup, reader):
    study = study_setup["study"]
    cases = study_setup["cases"]
    write_maps(study_setup["evaluation"], cases[0])
    _exam2_open(study, reader)
    client.force_login(reader)
    by_case = {a.case_id: a for a in selectors.worklist(study, reader, 2)}
    with_maps, without = by_case[cases[0].pk], by_case[cases[1].pk]
    assert client.get(f"/api/reading/{without.pk}/").json()["heat_maps"] is None
    url = payloads.heat_map_url(without.pk, _mapped_series(cases[1]).pk)
    assert client.get(url).status_code == 404

    Study.objects.filter(pk=study.pk).update(heat_maps=Study.HeatMaps.ON)
    assert client.get(f"/api/reading/{with_maps.pk}/").json()["heat_maps"]["default_on"] is True
    Study.objects.filter(pk=study.pk).update(heat_maps=Study.HeatMaps.HIDDEN)
    assert client.get(f"/api/reading/{with_maps.pk}/").json()["heat_maps"] is None
    hidden_url = payloads.heat_map_url(with_maps.pk, _mapped_series(cases[0]).pk)
    assert client.get(hidden_url).status_code == 404


def test_exam2_maps_are_locked_in_the_washout_and_closed_to_other_readers(client, study_setup, reader,
                                                                           other_reader):
    study = study_setup["study"]
    _with_maps(study_setup)
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    a = selectors.worklist(study, reader, 2).first()
    url = payloads.heat_map_url(a.pk, _mapped_series(a.case).pk)
    client.force_login(reader)
    assert client.get(url).status_code == 403            # in the washout: exam 2 is not open yet
    move_washout(study, reader, days=29)
    assert client.get(url).status_code == 200
    client.force_login(other_reader)
    assert client.get(url).status_code == 404


def test_nothing_identifying_reaches_the_maps(client, study_setup, reader):
    _with_maps(study_setup)
    study = study_setup["study"]
    _exam2_open(study, reader)
    client.force_login(reader)
    identifying = [c.pseudonym for c in study_setup["cases"]] + [c.source_key_hash for c in study_setup["cases"]] + [
        s.series_uid for c in study_setup["cases"] for s in c.series.all()]
    for a in selectors.worklist(study, reader, 2):
        heat = client.get(f"/api/reading/{a.pk}/").json()["heat_maps"]
        texts = [str(heat)] + [client.get(url).content.decode() for url in heat["series"].values()]
        for text in texts:
            assert not [value for value in identifying if value and value in text]
            assert f"series/{_mapped_series(a.case).pk}/" not in text    # no series key either


def test_the_study_page_says_the_setting_and_how_many_cases_have_maps(client, study_setup, coordinator):
    study = study_setup["study"]
    write_maps(study_setup["evaluation"], study_setup["cases"][0])
    client.force_login(coordinator)
    html = client.get(f"/coordination/studies/{study.pk}/").content.decode()
    assert ("AI heat-maps in exam 2: offered, off until the reader turns them on (key H) (1 of 4 cases have them)"
            in html)
    assert selectors.study_case_summary(study)["with_heat_maps"] == 1


def test_only_the_sequences_the_likelihood_used_get_their_maps_shown(client, study_setup, reader):
    study = study_setup["study"]
    case = study_setup["cases"][0]
    t2axi = next(s for s in case.series.all() if s.sequence_code == "T2axi")      # not in the set (T2sag, DWI)
    write_maps(study_setup["evaluation"], case, series=t2axi)
    _exam2_open(study, reader)
    client.force_login(reader)
    a = next(a for a in selectors.worklist(study, reader, 2) if a.case_id == case.pk)
    assert client.get(f"/api/reading/{a.pk}/").json()["heat_maps"] is None
    assert client.get(payloads.heat_map_url(a.pk, t2axi.pk)).status_code == 404
