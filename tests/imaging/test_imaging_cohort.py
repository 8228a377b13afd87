"""Cohorts: frozen case sets whose build job writes the training array store (224×224 uint8 crops around
every tumour box, indexes by case / sequence / slice, a content hash). Also the demo step, run twice,
and an import through a real Celery worker process."""

import functools
import io

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from core.constants import SARCOMA, SEQUENCE_CODES
from imaging import cohorts, phantoms, services, services_demo
from imaging.arraystore import LABEL_LEIOMYOMA, LABEL_SARCOMA, open_array_store
from imaging.models import Case, Cohort, Series, TumourBox
from imaging.phantoms import write_phantom_cohort
from imaging.services_cohorts import cohort_build_start, cohort_create
from jobs.models import Job, JobStatus
from jobs.services import job_create, job_run
from testsupport import broker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def run_jobs_here(request, monkeypatch):
    """Jobs are run in the test (job_run) rather than sent to a broker, except in worker tests."""
    if request.node.get_closest_marker("worker") is None:
        monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms") / "cohort"
    write_phantom_cohort(out, patients=2, sarcoma_fraction=0.5, seed=5, slice_size=32, slices_per_series=3)
    return out


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1


def _import(phantom_dir, **extra):
    params = services.import_params(
        source=phantom_dir / "dicom",
        manifest=phantom_dir / "manifest.csv",
        boxes=phantom_dir / "boxes.csv",
        **extra,
    )
    job = job_run(job_pk=job_create(kind="import_dicom", params=params, enqueue=False).pk, worker="t")
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def test_a_cohort_build_writes_crops_indexes_and_a_content_hash(phantom_dir, settings):
    _import(phantom_dir)
    cohort = cohort_create(name="Pilot 1", cases=Case.objects.all())
    assert cohort.name == "pilot-1" and cohort.frozen and cohort.members.count() == 2
    job = cohort_build_start(cohort=cohort)
    job = job_run(job_pk=job.pk, worker="t")
    assert job.status == JobStatus.SUCCEEDED, job.error
    cohort.refresh_from_db()
    expected = (
        TumourBox.objects.filter(series__case__in=Case.objects.all())
        .exclude(series__mapped_code="unused")
        .count()
    )
    store = open_array_store(settings.MEDIA_ROOT / cohort.store_path, verify=True)
    assert store.n_slices == cohort.n_slices == expected == job.result["n_slices"] > 0
    assert store.slices.dtype == np.uint8 and store.slices.shape[1:] == (224, 224)
    assert cohort.content_hash == store.content_hash and cohort.content_hash.startswith("sha256:")
    assert set(store.case_list()) == set(Case.objects.values_list("pk", flat=True))
    for case in Case.objects.all():
        label = LABEL_SARCOMA if case.truth == SARCOMA else LABEL_LEIOMYOMA
        assert store.case_labels()[case.pk] == label
        assert cohort.members.get(case=case).n_slices == store.slices_per_case()[case.pk]
    # one row checked against its source: the sequence index and the slice number of a stored box
    row = 0
    series = Series.objects.get(
        case_id=int(store.case_ids[row]),
        mapped_code=SEQUENCE_CODES[store.sequence_idx[row]],
        boxes__slice_index=int(store.slice_no[row]),
    )
    assert series.boxes.filter(slice_index=int(store.slice_no[row])).exists()
    assert store.slices[row].std() > 0  # an image, not padding
    # building again finds the store current and leaves it
    again = job_run(job_pk=job_create(kind="cohort_build", params={"cohort": cohort.pk}, enqueue=False).pk)
    assert again.result["skipped"] == "the array store is already built"


def test_crops_follow_the_windowed_slice_around_the_box(phantom_dir):
    _import(phantom_dir)
    box = TumourBox.objects.exclude(series__mapped_code="unused").first()
    image = cohorts.series_uint8_slices(box.series, [box.slice_index])[0]
    assert image.dtype == np.uint8 and image.shape == (box.series.rows, box.series.cols)
    assert image.max() > image.min()


def test_a_cohort_needs_ground_truth_on_every_case(phantom_dir):
    _import(phantom_dir)
    case = Case.objects.first()
    services.case_update(case=case, truth="")
    with pytest.raises(ValidationError) as caught:
        cohort_create(name="no-truth", cases=Case.objects.all())
    assert case.pseudonym in str(caught.value) and "without ground truth" in str(caught.value)


def test_a_cohort_without_boxes_fails_with_a_message(phantom_dir):
    _import(phantom_dir)
    TumourBox.objects.all().delete()
    cohort = cohort_create(name="empty", cases=Case.objects.all())
    job = job_run(job_pk=cohort_build_start(cohort=cohort).pk)
    assert job.status == JobStatus.FAILED and "no tumour boxes" in job.error


def test_build_cohort_command(phantom_dir):
    _import(phantom_dir)
    out = io.StringIO()
    call_command("build_cohort", "cmd-cohort", "--cases", "synthetic", "--inline", stdout=out)
    cohort = Cohort.objects.get(name="cmd-cohort")
    assert cohort.content_hash and f"content hash {cohort.content_hash}" in out.getvalue()


def test_build_cohort_command_sets_the_input_size(phantom_dir, settings):
    _import(phantom_dir)
    call_command("build_cohort", "small", "--cases", "synthetic", "--input-size", "48", "--inline",
                 stdout=io.StringIO())
    cohort = Cohort.objects.get(name="small")
    store = open_array_store(settings.MEDIA_ROOT / cohort.store_path, verify=True)
    assert cohort.input_size == store.input_size == 48


def test_the_cohort_form_sets_the_input_size_and_refuses_a_bad_one(phantom_dir, client, coordinator):
    _import(phantom_dir)
    client.force_login(coordinator)
    form = {"name": "form-small", "selection": "synthetic", "crop_margin": "0.15", "input_size": "64"}
    response = client.post("/imaging/cohorts/", form)
    assert response.status_code == 302 and Cohort.objects.get(name="form-small").input_size == 64
    page = client.post("/imaging/cohorts/", {**form, "name": "form-tiny", "input_size": "8"}).content.decode()
    assert "greater than or equal to 32" in page and not Cohort.objects.filter(name="form-tiny").exists()
    assert "64 px" in client.get("/imaging/cohorts/").content.decode()


def test_the_demo_step_imports_once_and_builds_the_demo_cohort(monkeypatch):
    small = functools.partial(phantoms.write_phantom_cohort, slice_size=32, slices_per_series=3)
    monkeypatch.setattr(phantoms, "write_phantom_cohort", small)
    monkeypatch.setattr(services_demo, "DEMO_PATIENTS", 2)
    monkeypatch.setattr(services_demo, "DEMO_LABEL", "demo: synthetic phantom cohort (test)")
    lines = []
    services_demo.demo_phantoms_import(lines.append)
    cases = Case.objects.count()
    assert (
        cases == 2 and Case.objects.filter(is_synthetic=True).count() == 2 and "0 files rejected" in lines[-1]
    )
    services_demo.demo_phantoms_import(lines.append)
    assert lines[-1].startswith("already imported") and Case.objects.count() == cases
    services_demo.demo_cohort_build(lines.append)
    services_demo.demo_cohort_build(lines.append)
    assert Cohort.objects.get(name=services_demo.DEMO_COHORT).content_hash
    assert lines[-1].startswith(f"cohort {services_demo.DEMO_COHORT} already built")


@pytest.mark.worker
def test_an_import_runs_in_a_real_worker_process_with_parallel_readers(
    phantom_dir, tmp_path, settings, start_worker
):
    folder = tmp_path / "broker"
    with broker("filesystem://", folder):
        start_worker(
            broker_url="filesystem://",
            broker_folder=folder,
            MEDIA_ROOT=settings.MEDIA_ROOT,
            UPLOAD_ROOT=settings.UPLOAD_ROOT,
            DEBUG=1,
        )
        job = services.import_start(
            source=phantom_dir / "dicom", manifest=phantom_dir / "manifest.csv", workers=2
        )
        wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, 120, what="import in the worker")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.worker.startswith("test@") and job.result["files_rejected"] == 0
    assert Case.objects.count() == 2 and Series.objects.count() == job.result["series"]
