"""Import robustness (issue 12, items 9 and 10): one bad archive member is refused with a reason and the rest
imported; no member name or server path reaches a job's error, the summary, a page or a log; an upload refused
by CSRF, by its Origin, by its number of files or by its size leaves nothing on disk."""

import io
import json
import logging
import zipfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from imaging import importer_sources, importer_store, services, views_upload
from imaging.models import ImportBatch, Series
from imaging.phantoms import write_phantom_cohort
from jobs.models import Job, JobStatus
from jobs.services import job_create, job_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]

IDENTITY = "SMITH_JANE"  # a folder named after a patient, as exports often are


@pytest.fixture(autouse=True)
def run_jobs_here(monkeypatch):
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)



@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory) -> list[Path]:
    """Two SYNTHETIC series of three 32 x 32 slices."""
    out = tmp_path_factory.mktemp("phantoms") / "cohort"
    write_phantom_cohort(out, patients=1, sarcoma_fraction=1.0, seed=11, slice_size=32, slices_per_series=3)
    files = sorted((out / "dicom").rglob("*.dcm"))
    return [f for f in files if f.parent.name in ("S0001", "S0002")]


@pytest.fixture(autouse=True)
def roots(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    return settings


def _left_on_disk() -> list[Path]:
    return sorted(Path(django_settings.UPLOAD_ROOT).rglob("*"))


def _conflicting_zip(files: list[Path], *, folder_first: bool = False) -> bytes:
    """A file ``SMITH_JANE`` and a member ``SMITH_JANE/IM0001`` (in the order asked), and four good members."""
    conflict = [(IDENTITY, files[0]), (f"{IDENTITY}/IM0001", files[1])]
    if folder_first:
        conflict.reverse()
    members = conflict + [(f"export/{f.parent.name}/{f.name}", f) for f in files[2:]]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, path in members:
            archive.writestr(name, path.read_bytes())
    return buffer.getvalue()


def _named(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def _csrf_client(user) -> tuple[Client, str]:
    """A client that enforces CSRF like a browser, signed in, with the token the upload page gives."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/imaging/import/").status_code == 200
    return client, client.cookies[django_settings.CSRF_COOKIE_NAME].value


# --- item 9: a member whose path another member took ------------------------------------------------------


@pytest.mark.parametrize("folder_first", [False, True], ids=["file-then-folder", "folder-then-file"])
def test_a_member_whose_path_is_taken_is_refused_and_the_rest_imported(
    phantom_files, tmp_path, client, coordinator, caplog, folder_first
):
    caplog.set_level(logging.DEBUG)
    client.force_login(coordinator)
    data = _conflicting_zip(phantom_files, folder_first=folder_first)
    response = client.post("/imaging/import/", {"files": _named(data, "export.zip")})
    assert response.status_code == 302, response.content[:300]
    job = Job.objects.get(kind="import_dicom")
    upload_dir = job.params["upload_dir"]
    job = job_run(job_pk=job.pk, worker="t")

    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.result
    assert result["files_seen"] == len(phantom_files)
    assert result["files_imported"] == len(phantom_files) - 1 and result["files_rejected"] == 1
    [rejected] = result["rejected"]
    assert rejected["index"] == 2 and rejected["reason"] == importer_sources.MEMBER_CONFLICT
    assert "conflicts with another member's path" in rejected["reason"]
    # reported like every rejected file: its index, and its name only when it is a scanner's counter
    assert rejected["file"] == ("archive member #2 (name hidden)" if folder_first else "archive member #2 (IM0001)")
    assert Series.objects.count() == 2

    batch = ImportBatch.objects.get()
    pages = [client.get(url) for url in (f"/imaging/imports/{batch.pk}/", f"/jobs/{job.pk}/", f"/api/jobs/{job.pk}/")]
    assert all(page.status_code == 200 for page in pages)
    assert "conflicts with another member" in pages[0].content.decode()
    seen = {
        "job error": job.error,
        "job step": job.step,
        "job result": json.dumps(job.result),
        "job params": json.dumps(job.params),
        "summary": json.dumps(batch.summary),
        "rejections": json.dumps(batch.rejections),
        "source label": batch.source_label,
        "pages": " ".join(page.content.decode("utf-8", "replace") for page in pages),
        "logs": caplog.text,
    }
    for needle in (IDENTITY, upload_dir, str(tmp_path)):
        assert [where for where, text in seen.items() if needle in text] == [], needle


def test_the_conflict_no_longer_fails_an_import_from_the_command_line_either(phantom_files, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    archive = tmp_path / "export.zip"
    archive.write_bytes(_conflicting_zip(phantom_files))
    job = job_run(
        job_pk=job_create(
            kind="import_dicom", params=services.import_params(source=archive), enqueue=False
        ).pk,
        worker="t",
    )
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["files_imported"] == len(phantom_files) - 1 and job.result["files_rejected"] == 1
    assert IDENTITY not in caplog.text and str(tmp_path) not in caplog.text


def test_a_member_refused_on_a_conflict_never_removes_the_other_members_file(tmp_path):
    archive = tmp_path / "same-name-twice.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a/IM0001", b"first")
        with pytest.warns(UserWarning, match="Duplicate name"):
            handle.writestr("a/IM0001", b"second")
        handle.writestr("a", b"a file where a folder is")
        handle.writestr("a/IM0001/deeper", b"below a file")
    rejected = importer_sources.extract_zip_safely(archive, tmp_path / "out", limits=importer_sources.ZipLimits())
    assert [r["index"] for r in rejected] == [2, 3, 4]
    assert {r["reason"] for r in rejected} == {importer_sources.MEMBER_CONFLICT}
    assert (tmp_path / "out" / "a" / "IM0001").read_bytes() == b"first"


def test_an_unexpected_error_fails_the_import_with_a_class_name_only(phantom_files, tmp_path, monkeypatch, caplog):
    """Anything the importer did not foresee (here the volume store failing with an OSError that names a
    path, as every OSError does) ends the job with a fixed reason: no message, no path, in the job or log."""
    caplog.set_level(logging.DEBUG)
    secret_path = f"{tmp_path}/media/{IDENTITY}/volume.u16le.gz"

    def failing_write(*args, **kwargs):
        raise PermissionError(13, "Permission denied", secret_path)

    monkeypatch.setattr(importer_store, "write_volume", failing_write)
    archive = tmp_path / "export.zip"
    archive.write_bytes(_conflicting_zip(phantom_files))
    job = job_run(
        job_pk=job_create(
            kind="import_dicom", params=services.import_params(source=archive), enqueue=False
        ).pk,
        worker="t",
    )
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("the import stopped on an unexpected error (PermissionError)")
    assert "import job" in caplog.text and "PermissionError" in caplog.text  # the log says what and where
    for text in (job.error, job.step, json.dumps(job.result), caplog.text):
        assert IDENTITY not in text and str(tmp_path) not in text and "Permission denied" not in text


# --- item 10: uploads refused before they are written ----------------------------------------------------


def test_an_upload_without_a_valid_csrf_token_writes_nothing(phantom_files, coordinator, monkeypatch):
    made = []
    monkeypatch.setattr(services, "upload_dir_new", lambda: made.append(1))  # the folder must never be asked for
    client, token = _csrf_client(coordinator)
    for data in (
        {"files": _named(phantom_files[0].read_bytes(), "IM0001")},  # no token at all
        {"csrfmiddlewaretoken": "x" * 32, "files": _named(phantom_files[0].read_bytes(), "IM0001")},  # wrong
    ):
        response = client.post("/imaging/import/", data)
        assert response.status_code == 403
    # a token after the files arrives too late: the first file would already be written
    response = client.post(
        "/imaging/import/", {"files": _named(phantom_files[0].read_bytes(), "IM0001"), "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 403
    assert made == [] and _left_on_disk() == [] and not Job.objects.exists()


def test_an_upload_from_another_origin_writes_nothing(phantom_files, coordinator):
    client, token = _csrf_client(coordinator)
    response = client.post(
        "/imaging/import/",
        {"csrfmiddlewaretoken": token, "files": _named(phantom_files[0].read_bytes(), "IM0001")},
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403
    assert _left_on_disk() == [] and not Job.objects.exists()


@pytest.mark.parametrize("how", ["form field first", "header"])
def test_an_upload_with_its_token_is_stored_and_imported(phantom_files, coordinator, how):
    client, token = _csrf_client(coordinator)
    files = [_named(path.read_bytes(), path.name) for path in phantom_files[:3]]
    if how == "header":
        response = client.post("/imaging/import/", {"files": files}, HTTP_X_CSRFTOKEN=token)
    else:
        response = client.post(
            "/imaging/import/", {"csrfmiddlewaretoken": token, "files": files}, HTTP_ORIGIN="http://testserver"
        )
    assert response.status_code == 302, response.content[:300]
    job = Job.objects.get(kind="import_dicom")
    assert sorted(p.name for p in (Path(job.params["upload_dir"]) / "files").iterdir()) == [
        "000001", "000002", "000003",
    ]
    job = job_run(job_pk=job.pk, worker="t")
    assert job.status == JobStatus.SUCCEEDED and job.result["files_imported"] == 3
    assert [p for p in _left_on_disk() if p.is_file()] == []


def test_the_default_limit_of_files_in_one_upload_is_20000():
    from config import settings as project_settings

    assert project_settings.DATA_UPLOAD_MAX_NUMBER_FILES == 20_000
    assert views_upload.max_files() == django_settings.DATA_UPLOAD_MAX_NUMBER_FILES


def test_more_files_than_the_limit_is_a_400_naming_the_limit_and_leaves_nothing(
    phantom_files, settings, client, coordinator, caplog
):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    client.force_login(coordinator)
    files = [_named(path.read_bytes(), path.name) for path in phantom_files[:4]]
    response = client.post("/imaging/import/", {"files": files})
    assert response.status_code == 400
    text = response.content.decode()
    assert "more than 3 files in one upload: the limit is 3 files" in text
    assert _left_on_disk() == [] and not Job.objects.exists()
    assert "StoredUpload" not in caplog.text and str(settings.UPLOAD_ROOT) not in caplog.text
    # at the limit, the upload goes through
    files = [_named(path.read_bytes(), path.name) for path in phantom_files[:3]]
    assert client.post("/imaging/import/", {"files": files}).status_code == 302


def test_an_upload_over_the_size_limit_leaves_nothing(phantom_files, settings, client, coordinator):
    settings.IMAGING_UPLOAD_MAX_BYTES = phantom_files[0].stat().st_size + 10
    client.force_login(coordinator)
    files = [_named(path.read_bytes(), path.name) for path in phantom_files[:3]]
    response = client.post("/imaging/import/", {"files": files})
    assert response.status_code == 400 and b"larger than the limit" in response.content
    assert _left_on_disk() == [] and not Job.objects.exists()


def test_an_upload_the_server_cannot_store_says_so_without_a_path(
    phantom_files, tmp_path, monkeypatch, client, coordinator, caplog
):
    caplog.set_level(logging.DEBUG)
    broken = tmp_path / "uploads" / f"upload-{IDENTITY}"
    broken.mkdir(parents=True)  # no "files" folder inside: writing the first file fails with its path
    monkeypatch.setattr(services, "upload_dir_new", lambda: broken)
    client.force_login(coordinator)
    response = client.post("/imaging/import/", {"files": _named(phantom_files[0].read_bytes(), "IM0001")})
    assert response.status_code == 500
    text = response.content.decode()
    assert "could not be stored on the server (FileNotFoundError)" in text
    for shown in (text, caplog.text):
        assert IDENTITY not in shown and str(tmp_path) not in shown
    assert not broken.exists() and not Job.objects.exists()
