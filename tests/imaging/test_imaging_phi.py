"""Nothing identifying survives an import. Identifying strings are planted in a SYNTHETIC patient's files:
top level, sequences three deep, private blocks, overlays, descriptions, dates, UIDs, file and folder
names, and a rejected file. After an upload through the web page (and a second import on the command
line) none of them is found in a database dump, the stored files, the upload folder, the pages, the
API responses, the command's output or the logs."""

import gzip
import io
import logging
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from phi_planting import PLANTED, files_text, leaks, manifest, planted_study

from imaging.models import Case, Cohort, ImportBatch, Series
from imaging.phantoms import write_phantom_cohort
from imaging.services_cohorts import cohort_create
from jobs.models import Job, JobStatus
from jobs.services import job_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]


@pytest.fixture(autouse=True)
def run_jobs_here(request, monkeypatch):
    """Jobs are run in the test (job_run) rather than sent to a broker, except in worker tests."""
    if request.node.get_closest_marker("worker") is None:
        monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)



def test_no_planted_identifier_survives_an_import_anywhere(tmp_path, settings, client, make_user, caplog):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    caplog.set_level(logging.DEBUG)
    phantoms = tmp_path / "phantoms"
    write_phantom_cohort(
        phantoms, patients=1, sarcoma_fraction=1.0, seed=3, slice_size=32, slices_per_series=3
    )
    uids, n_good = planted_study(phantoms, tmp_path / "export")
    needles = PLANTED + uids
    folder = tmp_path / "export" / "Quillfeather_Zenobia_MRI"

    # --- the web upload -------------------------------------------------------------------------
    coordinator = make_user("coordinator")
    client.force_login(coordinator)
    handles = [open(p, "rb") for p in sorted(folder.iterdir())]
    try:
        response = client.post(
            "/imaging/import/", {"files": handles, "manifest": open(manifest(tmp_path / "m.csv"), "rb")}
        )
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 302, response.content[:500]
    job = Job.objects.get(kind="import_dicom")
    job = job_run(job_pk=job.pk, worker="test-inline")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["files_imported"] == n_good and job.result["files_rejected"] == 1
    assert job.result["rejected"][0]["reason"] == "not MR (modality CT)"
    assert job.result["rejected"][0]["file"].endswith("(name hidden)")
    case = Case.objects.get()
    assert case.truth == "sarcoma"  # the manifest found the case through the keyed hash
    cohort_create(name="phi-check", cases=[case])

    # --- a second import on the command line, from the identifying folder -------------------------
    out = io.StringIO()
    call_command(
        "import_dicom", str(folder), "--manifest", str(tmp_path / "m.csv"), "--inline", stdout=out, stderr=out
    )
    assert leaks(out.getvalue(), needles) == []

    # --- the database -------------------------------------------------------------------------------
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert "Quillfeather" not in str(Job.objects.values_list("params", flat=True))
    assert leaks(dump.getvalue(), needles) == []
    assert (
        case.pseudonym in dump.getvalue() and '"model": "imaging.series"' in dump.getvalue()
    )  # it covers imaging
    assert ImportBatch.objects.count() == 2 and Series.objects.count() > 5

    # --- stored files; the raw upload is gone --------------------------------------------------------
    assert leaks(files_text(Path(settings.MEDIA_ROOT)), needles) == []
    leftovers = [p for p in Path(settings.UPLOAD_ROOT).rglob("*") if p.is_file()]
    assert leftovers == []

    # --- pages, admin and API -------------------------------------------------------------------------
    series = list(Series.objects.all())
    batch = ImportBatch.objects.first()
    urls = [
        "/imaging/cases/",
        f"/imaging/cases/{case.pk}/",
        "/imaging/mapping/",
        "/imaging/imports/",
        f"/imaging/imports/{batch.pk}/",
        "/imaging/cohorts/",
        f"/jobs/{job.pk}/",
        "/api/cases/",
        f"/api/cases/{case.pk}/",
        f"/api/jobs/{job.pk}/",
        "/admin/imaging/case/",
        f"/admin/imaging/case/{case.pk}/change/",
        "/admin/imaging/series/",
        "/admin/imaging/importbatch/",
        f"/admin/imaging/importbatch/{batch.pk}/change/",
        f"/admin/imaging/cohort/{Cohort.objects.get().pk}/change/",
    ]
    for s in series:
        urls += [
            f"/imaging/series/{s.pk}/",
            f"/api/series/{s.pk}/meta",
            f"/admin/imaging/series/{s.pk}/change/",
        ]
    admin = make_user("admin")
    for user in (coordinator, admin):
        client.force_login(user)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            assert leaks(response.content.decode("utf-8", "replace"), needles) == [], url
    volume = client.get(f"/api/series/{series[0].pk}/volume", HTTP_ACCEPT_ENCODING="gzip")
    assert leaks(gzip.decompress(b"".join(volume.streaming_content)).decode("latin-1"), needles) == []

    # --- logs -------------------------------------------------------------------------------------------
    assert "import batch" in caplog.text
    assert leaks(caplog.text, needles) == []


def test_planted_files_still_carry_the_identifiers_before_import(tmp_path):
    """The check above can fail: the planted values are really in the source files and folder names."""
    phantoms = tmp_path / "phantoms"
    write_phantom_cohort(
        phantoms, patients=1, sarcoma_fraction=1.0, seed=3, slice_size=32, slices_per_series=3
    )
    uids, _ = planted_study(phantoms, tmp_path / "export")
    text = files_text(tmp_path / "export")
    missing = [n for n in PLANTED + uids if n.casefold() not in text.casefold()]
    assert missing == []
    shutil.rmtree(tmp_path / "export")
