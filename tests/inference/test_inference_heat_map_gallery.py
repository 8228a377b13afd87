"""Issue 18 on the evaluation page (SYNTHETIC, no Keras): the heat-map gallery of the most confident right and
wrong cases, each drawn by its own PNG view, and the button that starts the heat-maps job. The maps are written
by hand (``saliency_store.write_case_maps``); the job itself is tested with the runner."""

import io
import re

import numpy as np
import pytest
from PIL import Image

from core.constants import SEQUENCE_CODES
from factories_inference import DWI, T2AXI, fake_trained_run, make_cohort
from inference import gallery, saliency_store, selectors, services
from inference.models import CaseAIResult, Evaluation
from jobs import services as jobs
from jobs.models import Job, JobStatus

SIZE = 24


# --- the ranking, plain logic ----------------------------------------------------------------------------

def test_right_and_wrong_follow_the_call_at_50_percent_and_the_truth():
    right, wrong = gallery.most_confident([(1, 90.0, "sarcoma"), (2, 10.0, "leiomyoma"), (3, 80.0, "leiomyoma"),
                                           (4, 30.0, "sarcoma"), (5, 50.0, "sarcoma"), (6, 50.0, "leiomyoma")])
    assert [r.case_pk for r in right] == [1, 2, 5]       # a tie at 50 % is a sarcoma call (core.metrics.ai_wrong)
    assert [r.case_pk for r in wrong] == [3, 4, 6]
    assert all(r.right for r in right) and not any(r.right for r in wrong)


def test_the_most_confident_come_first_and_equal_confidence_goes_by_case():
    right, wrong = gallery.most_confident([(7, 60.0, "sarcoma"), (3, 5.0, "leiomyoma"), (9, 95.0, "sarcoma"),
                                           (4, 40.0, "leiomyoma"), (8, 99.0, "leiomyoma"), (2, 1.0, "sarcoma")])
    assert [(r.case_pk, r.confidence) for r in right] == [(3, 45.0), (9, 45.0), (4, 10.0), (7, 10.0)]
    assert [(r.case_pk, r.confidence) for r in wrong] == [(2, 49.0), (8, 49.0)]


def test_at_most_four_each_and_cases_without_truth_or_likelihood_are_left_out():
    cases = [(pk, 100.0 - pk, "sarcoma") for pk in range(1, 8)] + [(pk, float(pk), "sarcoma") for pk in (20, 21)]
    cases += [(30, 99.0, None), (31, 1.0, ""), (32, None, "sarcoma")]
    right, wrong = gallery.most_confident(cases)
    assert [r.case_pk for r in right] == [1, 2, 3, 4] and [r.case_pk for r in wrong] == [20, 21]
    every_right, _ = gallery.most_confident(cases, per_side=None)
    assert [r.case_pk for r in every_right] == [1, 2, 3, 4, 5, 6, 7]


# --- the page and its views --------------------------------------------------------------------------------

@pytest.fixture
def media(transactional_db, tmp_path, settings, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)   # no broker: jobs stay queued
    return settings.MEDIA_ROOT


@pytest.fixture
def evaluation(media) -> Evaluation:
    run = fake_trained_run(make_cohort(), repeats=2)
    evaluation = services.evaluation_start(run=run, enqueue=False)
    job = jobs.job_run(job_pk=evaluation.job.pk, worker="test")
    assert job.status == JobStatus.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    return evaluation


def write_maps(evaluation: Evaluation, case_pk: int) -> None:
    """Two slices (T2axi, DWI); the DWI slice's map is the strongest."""
    maps = np.zeros((2, SIZE, SIZE), np.uint8)
    maps[0, 4:8, 4:8], maps[1, 10:20, 10:20] = 90, 250
    crops = np.tile(np.linspace(0, 255, SIZE, dtype=np.uint8), (2, SIZE, 1))
    saliency_store.write_case_maps(selectors.case_maps_path(evaluation.pk, case_pk), saliency_store.CaseMaps(
        maps=maps, crops=crops, series_id=np.array([11, 12]), slice_no=np.array([0, 0]),
        sequence_idx=np.array([T2AXI, DWI]), window=np.array([[0, 0, SIZE], [0, 0, SIZE]]), scale=1.0,
        models=("r0f0", "r1f0"), kind=saliency_store.HELD_OUT, crops_sha256="0" * 64))


def set_likelihoods(evaluation: Evaluation) -> dict[str, list[CaseAIResult]]:
    """Sarcomas at 95, 90, 85, …; leiomyomas at 5, 10, …; then the first two of each class called wrong
    (a sarcoma at 2 % and 40 %, a leiomyoma at 97 % and 70 %)."""
    by_truth = {}
    for truth, start, step in (("sarcoma", 95.0, -5.0), ("leiomyoma", 5.0, 5.0)):
        results = list(CaseAIResult.objects.filter(evaluation=evaluation, case__truth=truth).order_by("case_id"))
        for i, result in enumerate(results):
            result.likelihood = start + step * i
        results[0].likelihood, results[1].likelihood = (2.0, 40.0) if truth == "sarcoma" else (97.0, 70.0)
        CaseAIResult.objects.bulk_update(results, ["likelihood"])
        by_truth[truth] = results
    return by_truth


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start:html.index("</div>", start)]


def test_the_page_shows_the_most_confident_right_and_wrong_cases_with_their_images(evaluation, client,
                                                                                  coordinator):
    by_truth = set_likelihoods(evaluation)
    results = by_truth["sarcoma"] + by_truth["leiomyoma"]
    lacking = results[-1]
    for result in results[:-1]:
        write_maps(evaluation, result.case_id)
    client.force_login(coordinator)
    html = client.get(f"/inference/evaluations/{evaluation.pk}/").content.decode()
    assert 'id="heat-maps"' in html and f"{len(results) - 1} of {len(results)} cases" in html
    right, wrong = section(html, "heat-maps-right"), section(html, "heat-maps-wrong")
    sarcoma, leiomyoma = by_truth["sarcoma"], by_truth["leiomyoma"]
    # right: a sarcoma at 85 % and a leiomyoma at 15 % (35 points: by case), then 80 % and 20 % (30 points)
    assert _cases_in(right) == (sorted([sarcoma[2].case_id, leiomyoma[2].case_id])
                                + sorted([sarcoma[3].case_id, leiomyoma[3].case_id]))
    assert _cases_in(wrong) == [sarcoma[0].case_id, leiomyoma[0].case_id, leiomyoma[1].case_id,
                                sarcoma[1].case_id]                 # 2 %, 97 %, 70 %, 40 %
    for result in (sarcoma[0], leiomyoma[0]):
        assert f'/inference/evaluations/{evaluation.pk}/heat-maps/{result.case_id}.png' in wrong
        assert result.case.pseudonym in wrong
    assert "strongest slice: DWI" in wrong and "truth leiomyoma" in wrong and "97.0 %" in wrong
    assert f"/heat-maps/{lacking.case_id}.png" not in html
    assert 'id="heat-maps-legend"' in html and 'stop-color="#' in html
    assert "strong (the evaluation's full-colour level)" in html
    assert "not the tumour&#x27;s outline" in html or "not the tumour's outline" in html
    assert 'id="heat-maps-start"' in html and "for the other 1 case(s)" in html


def _cases_in(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-case="(\d+)"', html)]


def test_the_png_is_the_strongest_slice_with_its_map_over_it(evaluation, client, coordinator):
    result = CaseAIResult.objects.filter(evaluation=evaluation).first()
    write_maps(evaluation, result.case_id)
    client.force_login(coordinator)
    response = client.get(f"/inference/evaluations/{evaluation.pk}/heat-maps/{result.case_id}.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Cache-Control"].startswith("private")
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (SIZE, SIZE, 3)
    maps = selectors.case_maps(evaluation.pk, result.case_id)
    from inference.saliency_figure import overlay

    assert np.array_equal(image, overlay(maps.crops[1], maps.maps[1]))      # row 1: the DWI slice, strongest
    assert SEQUENCE_CODES[int(maps.sequence_idx[1])] == "DWI"


def test_the_png_is_refused_as_the_page_is_and_missing_without_maps(evaluation, client, coordinator, reader):
    with_maps, without = CaseAIResult.objects.filter(evaluation=evaluation)[:2]
    write_maps(evaluation, with_maps.case_id)
    base = f"/inference/evaluations/{evaluation.pk}"
    anonymous = client.get(f"{base}/heat-maps/{with_maps.case_id}.png")
    assert anonymous.status_code == 302 and anonymous.url.startswith("/login/")
    client.force_login(reader)
    assert client.get(f"{base}/").status_code == 404                  # the page hides an evaluation from readers
    assert client.get(f"{base}/heat-maps/{with_maps.case_id}.png").status_code == 404
    client.force_login(coordinator)
    assert client.get(f"{base}/heat-maps/{without.case_id}.png").status_code == 404
    assert client.get(f"/inference/evaluations/{evaluation.pk + 99}/heat-maps/{with_maps.case_id}.png"
                      ).status_code == 404


def test_without_maps_the_button_starts_the_job_for_every_case_with_a_result(evaluation, client, coordinator):
    client.force_login(coordinator)
    url = f"/inference/evaluations/{evaluation.pk}/"
    html = client.get(url).content.decode()
    assert 'id="heat-maps-none"' in html and 'id="heat-maps-start"' in html and ">Compute heat-maps<" in html
    assert 'id="heat-maps-right"' not in html
    response = client.post(f"{url}heat-maps/")
    job = Job.objects.get(kind="heat_maps")
    assert response.status_code == 302 and response.url == f"{url}#heat-maps"
    expected = sorted(CaseAIResult.objects.filter(evaluation=evaluation).values_list("case_id", flat=True))
    assert job.params == {"evaluation_pk": evaluation.pk, "case_pks": expected}
    assert job.status == JobStatus.QUEUED and job.created_by == coordinator
    html = client.get(url).content.decode()
    assert f"queued on the gpu queue: job {job.pk}" in html        # the success message names it
    assert 'id="heat-maps-job"' in html and f'href="/jobs/{job.pk}/"' in html
    assert 'id="heat-maps-start"' not in html                      # no second start while it is queued


def test_another_coordinators_running_job_is_named_without_a_link(evaluation, client, coordinator, make_user):
    job = services.heat_maps_start(evaluation=evaluation, user=make_user("coordinator"), enqueue=False)
    client.force_login(coordinator)
    html = client.get(f"/inference/evaluations/{evaluation.pk}/").content.decode()
    assert f"job {job.pk}" in html and f'href="/jobs/{job.pk}/"' not in html
    assert 'id="heat-maps-start"' not in html


def test_a_refused_start_is_a_message_on_the_page(media, client, coordinator):
    unfinished = services.evaluation_start(run=fake_trained_run(make_cohort(), repeats=2), enqueue=False)
    client.force_login(coordinator)
    response = client.post(f"/inference/evaluations/{unfinished.pk}/heat-maps/", follow=True)
    assert response.status_code == 200
    assert "heat-maps need a finished evaluation" in response.content.decode()
    assert not Job.objects.filter(kind="heat_maps").exists()
    assert 'id="heat-maps"' not in response.content.decode()       # no section before the evaluation is done


def test_a_reader_cannot_start_the_job(evaluation, client, reader):
    client.force_login(reader)
    response = client.post(f"/inference/evaluations/{evaluation.pk}/heat-maps/")
    assert response.status_code == 404                                 # as the page answers a reader
    assert not Job.objects.filter(kind="heat_maps").exists()
