"""A real PACS (issue 17, item 4): Orthanc, started by the test on spare loopback ports, holds a SYNTHETIC study with
identifiers planted everywhere and pushes it to the platform's listener (`/modalities/{id}/store`): it is imported
de-identified with no planted identifier anywhere; its malformed instance is refused with a reason while the rest
imports; while Orthanc's AE title is not on the allow-list, its push is refused and nothing is stored."""

import io
import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from orthanc import Orthanc, require_orthanc
from phi_planting import PLANTED, files_text, leaks, planted_study

from imaging import nodes
from imaging.dicom_listener import Listener
from imaging.models import Case, ImportBatch
from imaging.phantoms import write_phantom_cohort
from jobs.models import Job, JobStatus
from testsupport import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]
OUR_AE = "SARCOMA_RS"


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "phantoms"
    write_phantom_cohort(root, patients=1, sarcoma_fraction=1.0, seed=5, slice_size=32, slices_per_series=3)
    uids, n = planted_study(root, tmp_path / "planted")
    return sorted((tmp_path / "planted").rglob("*.dcm")), [*PLANTED, *uids], n


@pytest.fixture
def pacs(tmp_path):
    require_orthanc()
    server = Orthanc(tmp_path / "orthanc").start()
    yield server
    server.stop()


@pytest.fixture
def listener(data_dirs):
    started = Listener(ae_title=OUR_AE, port=0, host="127.0.0.1", inline=True, quiet_seconds=1).start()
    yield started
    started.stop()


def test_orthanc_pushes_a_study_to_the_listener_and_it_is_imported_with_no_planted_identifier(
        pacs, listener, study, data_dirs, caplog):
    caplog.set_level(logging.INFO)
    files, needles, n_mr = study
    nodes.dicom_node_add(name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port)
    pacs.upload(files)
    pacs.add_modality("platform", OUR_AE, listener.port)
    pushed = pacs.push("platform", pacs.studies(), permissive=True)
    assert pushed["status"] == 200, pushed
    job = wait_for(lambda: Job.objects.filter(kind="import_dicom").exclude(status__in=["queued", "running"]).first(),
                   120, what="the import of the pushed study")
    assert job.status == JobStatus.SUCCEEDED, job.error
    batch = ImportBatch.objects.get(job=job)
    assert batch.files_imported == n_mr and batch.summary["sender_ae"] == pacs.ae_title
    [reject] = batch.rejections                                       # the malformed (CT) instance, with its reason
    assert "MR" in reject["reason"]
    assert Case.objects.count() == 1
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    for where, text in (("database", dump.getvalue()), ("media", files_text(data_dirs / "media")),
                        ("uploads", files_text(data_dirs / "uploads")), ("log", caplog.text)):
        assert leaks(text, needles) == [], where


def test_a_pacs_whose_ae_title_is_not_on_the_allow_list_is_refused_and_nothing_is_stored(
        pacs, listener, study, data_dirs):
    files, _, _ = study
    nodes.dicom_node_add(name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
                         may_send=False)
    pacs.upload(files)
    pacs.add_modality("platform", OUR_AE, listener.port)
    pushed = pacs.push("platform", pacs.studies(), permissive=False)
    assert pushed["status"] != 200                                    # Orthanc reports the refused association
    assert not listener.root.exists() or not any(listener.root.iterdir())
    listener.flush(force=True)
    assert not Job.objects.filter(kind="import_dicom").exists() and not Case.objects.exists()


def _retrieve(*args):
    out = io.StringIO()
    call_command("pacs_retrieve", *args, "--inline", stdout=out)
    return out.getvalue()


def _check_no_identifier_left(data_dirs, needles, caplog):
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    for where, text in (("database", dump.getvalue()), ("media", files_text(data_dirs / "media")),
                        ("uploads", files_text(data_dirs / "uploads")), ("log", caplog.text)):
        assert leaks(text, needles) == [], where


@pytest.mark.parametrize("method", ["get", "dicomweb"])
def test_a_retrieval_job_finds_by_accession_number_and_pulls_the_study_de_identified(
        pacs, study, data_dirs, caplog, method):
    """(b) C-FIND then C-GET, (c) QIDO-RS then WADO-RS: one job; the line not found is listed by number."""
    require_orthanc(dicomweb=method == "dicomweb")
    caplog.set_level(logging.INFO)
    files, needles, n_mr = study
    nodes.dicom_node_add(name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
                         may_send=False, dicomweb_url=pacs.dicomweb_url)
    pacs.upload(files)
    output = _retrieve("--node", "orthanc", "--method", method, "ACC-ZQ-4471", "ACC-NOT-THERE")
    job = Job.objects.get(kind="pacs_retrieve")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["not_found"] == [2] and job.result["lines_done"] == [1, 2]
    assert len(job.result["studies"]) == 1 and job.result["instances"] == n_mr + 1
    assert "not found: line 2" in output and "ACC-NOT-THERE" not in job.result["summary"]
    assert job.params["items"].startswith("(2 lines, removed")                  # the list is gone from the job
    imported = Job.objects.get(kind="import_dicom")
    assert imported.status == JobStatus.SUCCEEDED, imported.error
    batch = ImportBatch.objects.get(job=imported)
    assert batch.files_imported == n_mr and "MR" in batch.rejections[0]["reason"]
    assert Case.objects.count() == 1
    _check_no_identifier_left(data_dirs, [*needles, "ACC-NOT-THERE"], caplog)


def test_a_retrieval_by_c_move_sends_the_study_to_the_platforms_listener(pacs, listener, study, data_dirs,
                                                                          caplog, settings):
    """(b) C-FIND then C-MOVE to our own AE title: the PACS pushes to the listener, which imports. (Without the
    malformed instance: Orthanc ends a C-MOVE at the first sub-operation its destination refuses, status 0xC000;
    the push and C-GET tests cover the refusal.)"""
    caplog.set_level(logging.INFO)
    settings.DICOM_AE_TITLE = OUR_AE
    files, needles, n_mr = study
    nodes.dicom_node_add(name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port)
    pacs.upload([f for f in files if "CT" not in f.name])
    pacs.add_modality("platform", OUR_AE, listener.port)
    _retrieve("--node", "orthanc", "--method", "move", "--patient-ids", "PID-ZQ-77310")
    job = Job.objects.get(kind="pacs_retrieve")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["instances"] == n_mr and not job.result.get("not_found")
    imported = wait_for(lambda: Job.objects.filter(kind="import_dicom").exclude(
        status__in=["queued", "running"]).first(), 120, what="the listener's import of the moved study")
    assert imported.status == JobStatus.SUCCEEDED, imported.error
    assert ImportBatch.objects.get(job=imported).files_imported == n_mr
    _check_no_identifier_left(data_dirs, needles, caplog)


def test_an_unreachable_node_fails_the_retrieval_with_a_clear_message(data_dirs):
    from orthanc import free_port

    nodes.dicom_node_add(name="gone", ae_title="GONE", host="127.0.0.1", port=free_port())
    with pytest.raises(CommandError, match="refused or did not answer the association"):
        _retrieve("--node", "gone", "ACC-1")
    job = Job.objects.get(kind="pacs_retrieve")
    assert job.status == JobStatus.FAILED
    assert "gone (GONE at 127.0.0.1:" in job.error and "refused or did not answer" in job.error
    assert job.params["items"][0]["value"] == "ACC-1"        # kept while it may be resumed


def test_the_list_is_never_shown_and_an_unexpected_error_quotes_none_of_it(data_dirs, client, admin_user,
                                                                             monkeypatch, caplog):
    """The job API and the admin show the list's size only; another library's error (which names the URL it
    asked, accession number included) reaches neither the job nor the log."""
    from imaging import retrieve

    nodes.dicom_node_add(name="web", ae_title="WEB", host="127.0.0.1", port=104,
                         dicomweb_url="http://127.0.0.1:9/dicom-web")

    def failing_find(self, item):
        raise ConnectionError(f"Max retries exceeded with url: /dicom-web/studies?AccessionNumber={item['value']}")

    monkeypatch.setattr(retrieve._Fetcher, "find", failing_find)
    with pytest.raises(CommandError, match="stopped on an unexpected error \\(ConnectionError\\)"):
        _retrieve("--node", "web", "--method", "dicomweb", "ACC-SECRET-9")
    job = Job.objects.get(kind="pacs_retrieve")
    assert "ACC-SECRET-9" not in job.error and "ACC-SECRET-9" not in caplog.text
    client.force_login(admin_user)
    shown = [client.get(f"/api/jobs/{job.pk}/").content.decode(), client.get("/api/jobs/").content.decode(),
             client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()]
    assert all("ACC-SECRET-9" not in text for text in shown)
    assert "(1 lines, not shown)" in shown[0]


def test_a_failed_retrieval_resumes_with_the_lines_left_and_fetches_no_study_twice(pacs, study, data_dirs,
                                                                                     monkeypatch):
    from imaging import retrieve
    from jobs.services import job_resume, job_run_inline

    files, _, n_mr = study
    nodes.dicom_node_add(name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
                         may_send=False)
    pacs.upload(files)
    real_find, calls = retrieve._Fetcher.find, []

    def find_failing_on_line_2(self, item):
        calls.append(item["line"])
        if item["line"] == 2 and calls.count(2) == 1:
            raise retrieve.RetrieveError("orthanc: the connection dropped")
        return real_find(self, item)

    monkeypatch.setattr(retrieve._Fetcher, "find", find_failing_on_line_2)
    with pytest.raises(CommandError, match="the connection dropped"):
        _retrieve("--node", "orthanc", "ACC-ZQ-4471", "patient:PID-ZQ-77310")      # the same study, twice
    job = Job.objects.get(kind="pacs_retrieve")
    assert job.status == JobStatus.FAILED and job.result["lines_done"] == [1]
    monkeypatch.setattr("jobs.services.job_enqueue", lambda job: None)
    job_resume(job=job)
    job_run_inline(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert calls == [1, 2, 2] and job.result["lines_done"] == [1, 2]               # line 1 was not looked up again
    assert len(job.result["studies"]) == 1 and job.result["instances"] == n_mr + 1  # nor its study fetched twice
    assert Job.objects.filter(kind="import_dicom").count() == 1


def test_the_list_is_checked_and_reported_by_line_number_never_by_value():
    from django.core.exceptions import ValidationError

    from imaging.retrieve import parse_list

    items = parse_list("ACC-1\n\n# a comment\npatient:PID-9\naccession: ACC-2\n", default_kind="accession")
    assert [(i["line"], i["kind"], i["value"]) for i in items] == [(1, "accession", "ACC-1"),
                                                                     (4, "patient", "PID-9"),
                                                                     (5, "accession", "ACC-2")]
    with pytest.raises(ValidationError) as refused:
        parse_list("ACC-1\nACC*\nSECRET\\NAME\n")
    assert "line(s) 2, 3" in str(refused.value) and "SECRET" not in str(refused.value)
    with pytest.raises(ValidationError, match="no accession number or patient ID"):
        parse_list("\n# nothing\n")


def test_the_retrieve_page_starts_a_retrieval_and_its_job_page_says_what_came(pacs, study, data_dirs, client,
                                                                               coordinator, make_user):
    files, _, n_mr = study
    nodes.dicom_node_add(name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
                         may_send=False)
    pacs.upload(files)
    client.force_login(make_user("reader"))
    assert client.get("/imaging/retrieve/").status_code == 403
    client.force_login(coordinator)
    page = client.get("/imaging/retrieve/").content.decode()
    assert "orthanc (TESTPACS at 127.0.0.1:" in page
    refused = client.post("/imaging/retrieve/", {"node": "orthanc", "method": "get", "kind": "accession",
                                                  "text": "ACC*"})
    assert refused.status_code == 200 and "line(s) 1: not an accession number" in refused.content.decode()
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post("/imaging/retrieve/", {"node": "orthanc", "method": "get", "kind": "accession",
                                                   "text": "ACC-ZQ-4471",
                                                   "file": SimpleUploadedFile("list.txt", b"ACC-NOT-THERE\n")})
    job = Job.objects.get(kind="pacs_retrieve")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert [i["value"] for i in job.params["items"]] == ["ACC-ZQ-4471", "ACC-NOT-THERE"]
    from jobs.services import job_run_inline

    job_run_inline(job_pk=job.pk)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f"1 stud(ies) fetched, {n_mr + 1} instance(s); not found: line 2" in page
    assert "Open import job" in page and "ACC-NOT-THERE" not in page
    assert Job.objects.get(kind="import_dicom").created_by == coordinator      # their own job page opens it


def test_a_retrieval_cancelled_between_lines_stops_and_keeps_what_it_fetched(pacs, study, data_dirs, monkeypatch):
    from imaging import retrieve
    from jobs import services as jobs

    files, _, n_mr = study
    nodes.dicom_node_add(name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
                         may_send=False)
    pacs.upload(files)
    monkeypatch.setattr(jobs, "PROGRESS_WRITE_EVERY_S", 0.0)       # the cancel is seen at the next check
    real_fetch = retrieve._Fetcher.fetch

    def fetch_then_cancel(self, study_uid):
        real_fetch(self, study_uid)
        jobs.job_cancel(job=self.job)

    monkeypatch.setattr(retrieve._Fetcher, "fetch", fetch_then_cancel)
    job = retrieve.retrieve_start(node="orthanc", text="ACC-ZQ-4471\nACC-TWO\nACC-THREE", enqueue=False)
    jobs.job_run_inline(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.can_resume
    assert job.result["lines_done"] == [1] and len(job.result["studies"]) == 1   # stopped before line 2
    assert Job.objects.get(kind="import_dicom").status == JobStatus.SUCCEEDED
    assert len(job.params["items"]) == 3                                          # kept for the resume


def test_a_failed_retrievals_list_can_be_discarded_from_the_retrieve_page(data_dirs, client, coordinator):
    from orthanc import free_port

    from imaging.retrieve import retrieve_start
    from jobs.services import job_run

    nodes.dicom_node_add(name="gone", ae_title="GONE", host="127.0.0.1", port=free_port())
    job = retrieve_start(node="gone", text="ACC-77\nACC-78", user=coordinator, enqueue=False)
    job_run(job_pk=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.can_resume
    client.force_login(coordinator)
    page = client.get("/imaging/retrieve/").content.decode()
    assert f"job {job.pk}</a> · failed · 2 line(s)" in page and "ACC-77" not in page
    assert client.post(f"/imaging/retrieve/{job.pk}/discard/").status_code == 302
    job.refresh_from_db()
    assert job.params["items"] == "(2 lines, discarded)" and not job.can_resume
    assert f"job {job.pk}</a>" not in client.get("/imaging/retrieve/").content.decode()
