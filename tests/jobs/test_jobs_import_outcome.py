"""Issue 15, bug 5: a non-DICOM upload was reported as "succeeded · 100 %", its reason hidden in a collapsed raw
result, with no link to its import, which was titled "upload of a 1 files (1 files)". The job page now ends such
an import as a warning, shows "0 imported, 1 rejected" and each reason, and links the import. Files are SYNTHETIC."""

import io

import pytest

from imaging.models import ImportBatch
from imaging.views_upload import upload_description, upload_title
from jobs.models import Job, JobStatus
from jobs.outcome import MAX_REASONS, job_outcome
from jobs.services import job_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]

NOT_DICOM = b"SYNTHETIC test note: plain text, not a DICOM file"


@pytest.fixture(autouse=True)
def run_jobs_here(monkeypatch, settings, tmp_path):
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)
    settings.MEDIA_ROOT, settings.UPLOAD_ROOT = tmp_path / "media", tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1


def _upload(client, *files: tuple[str, bytes], label: str = "") -> Job:
    client.get("/imaging/import/")  # the CSRF cookie
    uploads = []
    for name, data in files:
        handle = io.BytesIO(data)
        handle.name = name
        uploads.append(handle)
    response = client.post("/imaging/import/", {"label": label, "files": uploads})
    assert response.status_code == 302, response.content[:300]
    job = Job.objects.get(kind="import_dicom")
    return job_run(job_pk=job.pk, worker="t")


def test_an_upload_that_imported_nothing_ends_as_a_warning_not_a_success(client, coordinator):
    client.force_login(coordinator)
    job = _upload(client, ("notes.dcm", NOT_DICOM))
    assert job.status == JobStatus.WARNING, job.error
    assert job.step == "nothing imported: 0 imported, 1 rejected"
    assert job.result["files_imported"] == 0 and job.result["files_rejected"] == 1


def test_the_job_page_shows_the_warning_the_counts_the_reasons_and_links_the_import(client, coordinator):
    client.force_login(coordinator)
    job = _upload(client, ("notes.dcm", NOT_DICOM))
    batch = ImportBatch.objects.get(job=job)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="job-warning"' in page and "Finished with a warning" in page
    assert ">warning</strong>" in page and "succeeded" not in page
    assert '<p class="counts" id="job-counts"><strong>0 imported, 1 rejected</strong></p>' in page
    assert "<td>not a DICOM file (no DICM preamble)</td>" in page
    assert f'<a class="button" href="/imaging/imports/{batch.pk}/">Open the import</a>' in page
    assert "notes.dcm" not in page  # a file's own name is hidden unless it looks like a scanner's counter


def test_the_import_title_names_what_was_uploaded_once_and_in_good_english(client, coordinator):
    client.force_login(coordinator)
    _upload(client, ("IM0001", NOT_DICOM))
    assert ImportBatch.objects.get().source_label == "upload of 1 file"


def test_a_labelled_upload_keeps_its_label_with_what_was_uploaded(client, coordinator):
    client.force_login(coordinator)
    _upload(client, ("IM0001", NOT_DICOM), ("IM0002", NOT_DICOM), label="site B batch 3")
    assert ImportBatch.objects.get().source_label == "site B batch 3 (2 files)"


def test_upload_titles():
    assert upload_description(is_zip=True, n_files=1) == "a zip archive"
    assert upload_description(is_zip=False, n_files=1) == "1 file"
    assert upload_description(is_zip=False, n_files=12) == "12 files"
    assert upload_title("", "a zip archive") == "upload of a zip archive"
    assert upload_title("site A", "a zip archive") == "site A (a zip archive)"


def test_the_outcome_lists_the_first_reasons_and_says_how_many_more():
    rejected = [{"file": f"#{i}", "index": i, "reason": "not a DICOM file"} for i in range(MAX_REASONS + 7)]
    outcome = job_outcome({"files_imported": 1200, "files_rejected": len(rejected), "files_skipped": 0,
                           "rejected": rejected, "skipped": [], "import_batch": 4})
    assert outcome.counts == f"1,200 imported, {MAX_REASONS + 7} rejected"  # "0 skipped" is left out
    [reasons] = outcome.reasons
    assert (reasons.title, len(reasons.items), reasons.more) == ("Rejected files", MAX_REASONS, 7)
    assert outcome.links == [("/imaging/imports/4/", "Open the import")]


def test_a_result_without_counts_reasons_or_products_shows_no_outcome():
    assert not job_outcome({"host": "worker-1", "throughput": {"matmul_gflops": 3.0}})
    assert not job_outcome(None)


def test_skipped_files_are_counted_and_listed_when_there_are_any():
    outcome = job_outcome({"files_imported": 0, "files_rejected": 0, "files_skipped": 1, "rejected": [],
                           "skipped": [{"file": "#1", "index": 1, "reason": "companion file (.txt), not an image"}]})
    assert outcome.counts == "0 imported, 0 rejected, 1 skipped"
    assert [(r.title, r.items[0]["reason"]) for r in outcome.reasons] == [
        ("Skipped files", "companion file (.txt), not an image")]
