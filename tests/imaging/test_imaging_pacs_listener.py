"""The DICOM listener (issue 17, item 1), driven by a pynetdicom SCU: an allowed node's study is de-identified in
memory and imported after its quiet period, with nothing identifying on disk at any point; a malformed instance is
refused with its reason while the rest imports; unknown AE titles and addresses are refused; C-ECHO; the node
commands. SYNTHETIC phantoms with planted identifiers (phi_planting)."""

import io
import logging

import pydicom
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from phi_planting import PLANTED, files_text, leaks, planted_study
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification

from imaging import nodes
from imaging.dicom_listener import Listener
from imaging.models import Case, DicomNode, ImportBatch, Series
from imaging.phantoms import write_phantom_cohort
from jobs.models import Job, JobStatus
from testsupport import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]
OUR_AE = "SARCOMA_TEST"
NEEDLES: list[str] = []


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    write_phantom_cohort(root, patients=1, sarcoma_fraction=1.0, seed=3, slice_size=32, slices_per_series=3)
    return root


@pytest.fixture
def planted(phantoms, tmp_path):
    """One patient's study with identifiers planted everywhere, and one malformed (CT) instance in it; the source
    UIDs join the planted values to look for."""
    uids, _ = planted_study(phantoms, tmp_path / "planted")
    NEEDLES[:] = [*PLANTED, *uids]
    return sorted((tmp_path / "planted").rglob("*.dcm"))


@pytest.fixture
def listener(data_dirs):
    started = Listener(ae_title=OUR_AE, port=0, host="127.0.0.1", inline=True, quiet_seconds=0.5).start()
    yield started
    started.stop()


def send(port, files, *, calling="TESTPACS"):
    """C-STORE each file over one association; None when the association is refused, else the statuses."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(MRImageStorage)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", port, ae_title=OUR_AE)
    if not association.is_established:
        return None
    try:
        return [association.send_c_store(pydicom.dcmread(path)) for path in files]
    finally:
        association.release()


def echo(port, calling="TESTPACS"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    association = ae.associate("127.0.0.1", port, ae_title=OUR_AE)
    if not association.is_established:
        return None
    try:
        return association.send_c_echo().Status
    finally:
        association.release()


def test_an_allowed_node_pushes_a_study_imported_de_identified_with_nothing_identifying_on_disk(
        listener, planted, data_dirs, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    nodes.dicom_node_add(name="site-pacs", ae_title="TESTPACS", host="127.0.0.1", port=104)
    monkeypatch.setattr(listener, "quiet_seconds", 3600)         # hold the study to look at what was written
    statuses = send(listener.port, planted)
    assert statuses is not None
    by_name = {path.name: status for path, status in zip(planted, statuses, strict=True)}
    malformed = by_name.pop("Quillfeather_Zenobia_CT.dcm")
    assert malformed.Status == 0xC000 and "MR" in malformed.ErrorComment          # refused, with its reason
    assert {s.Status for s in by_name.values()} == {0x0000}
    received = data_dirs / "uploads" / "dicom-in"
    assert leaks(files_text(received), NEEDLES) == []            # nothing identifying was written, not even now
    assert sorted(p.suffix for p in received.rglob("i000001.*")) == [".json", ".npy"]

    monkeypatch.setattr(listener, "quiet_seconds", 0.5)
    job = wait_for(lambda: Job.objects.filter(kind="import_dicom", status=JobStatus.SUCCEEDED).first(), 60,
                   what="the study's import after its quiet period")
    batch = ImportBatch.objects.get(job=job)
    assert batch.files_imported == len(planted) - 1
    assert batch.source_label == f"{len(planted)} instance(s) received over DICOM from TESTPACS"
    assert batch.summary["sender_ae"] == "TESTPACS"
    [reject] = batch.rejections
    assert reject["file"].endswith("(instance {})".format(reject["index"])) and "MR" in reject["reason"]
    case = Case.objects.get()
    assert case.series.count() == Series.objects.count() >= 1
    assert batch.summary["source_name"] == "site-pacs"                          # the node's site: the issuer
    assert not any(p.is_dir() for p in received.iterdir())                      # the received folder is gone
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    for where, text in (("database", dump.getvalue()), ("media", files_text(data_dirs / "media")),
                        ("uploads", files_text(data_dirs / "uploads")), ("log", caplog.text)):
        assert leaks(text, NEEDLES) == [], where


def test_instances_of_one_study_wait_for_the_quiet_period_and_make_one_import(listener, planted):
    nodes.dicom_node_add(name="site-pacs", ae_title="TESTPACS", host="127.0.0.1", port=104)
    mr = [p for p in planted if "CT" not in p.name]
    assert send(listener.port, mr[:2]) and send(listener.port, mr[2:])         # two associations, one study
    job = wait_for(lambda: Job.objects.filter(kind="import_dicom").exclude(status__in=["queued", "running"]).first(),
                   60, what="the import")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert Job.objects.filter(kind="import_dicom").count() == 1
    assert ImportBatch.objects.get(job=job).files_imported == len(mr)


def test_an_unknown_ae_title_or_a_known_one_from_another_address_is_refused(listener, planted, caplog):
    caplog.set_level(logging.WARNING)
    assert send(listener.port, planted[:1], calling="STRANGER") is None
    assert "calling AE title 'STRANGER' is not on the allow-list" in caplog.text
    nodes.dicom_node_add(name="far-pacs", ae_title="FARPACS", host="192.0.2.10", port=104)   # TEST-NET address
    assert send(listener.port, planted[:1], calling="FARPACS") is None
    nodes.dicom_node_add(name="off-list", ae_title="OFFLIST", host="127.0.0.1", port=104, may_send=False)
    assert echo(listener.port, calling="OFFLIST") is None
    assert not (listener.root.exists() and any(listener.root.iterdir()))          # nothing received
    nodes.dicom_node_add(name="far-pacs", ae_title="FARPACS", host="192.0.2.10", port=104, any_address=True)
    assert echo(listener.port, calling="FARPACS") == 0x0000                        # an admin's change: at once


def test_the_node_commands_add_list_and_remove_and_refuse_a_bad_ae_title(db):
    out = io.StringIO()
    call_command("dicom_node", "add", "hospital-pacs", "--ae", "HOSP_PACS", "--host", "pacs.example.org",
                 "--port", "104", "--dicomweb", "https://pacs.example.org/dicom-web", stdout=out)
    assert "on the allow-list" in out.getvalue()
    call_command("dicom_node", "list", stdout=out)
    assert "hospital-pacs\tHOSP_PACS\tpacs.example.org:104\tmay send" in out.getvalue()
    with pytest.raises(CommandError, match="is not an AE title"):
        call_command("dicom_node", "add", "bad", "--ae", "WAY_TOO_LONG_AE_TITLE", "--host", "h", "--port", "104")
    with pytest.raises(CommandError, match="not a TCP port"):
        call_command("dicom_node", "add", "bad", "--ae", "OK", "--host", "h", "--port", "70000")
    call_command("dicom_node", "remove", "hospital-pacs", stdout=out)
    assert not DicomNode.objects.exists()
    with pytest.raises(CommandError, match="no DICOM node named 'hospital-pacs'"):
        call_command("dicom_node", "remove", "hospital-pacs")


def test_the_listener_command_serves_until_stopped_and_imports_here_with_inline(planted, tmp_path):
    """`manage.py dicom_listener --inline` as the compose service runs it (serve.sh dicom-listener runs the same
    command): C-ECHO, a study stored and imported in its own process, SIGTERM ends it."""
    import os
    import signal
    import subprocess
    import sys

    from orthanc import free_port

    from testsupport import REPO, database_url_for_worker

    nodes.dicom_node_add(name="site-pacs", ae_title="TESTPACS", host="127.0.0.1", port=104)
    port, log = free_port(), tmp_path / "listener.log"
    env = {**os.environ, "DATABASE_URL": database_url_for_worker(), "MEDIA_ROOT": str(tmp_path / "media"),
           "UPLOAD_ROOT": str(tmp_path / "uploads"), "DICOM_AE_TITLE": OUR_AE, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "manage.py", "dicom_listener", "--port", str(port), "--inline",
                                "--quiet-seconds", "1"], cwd=REPO, env=env, stdout=open(log, "wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "allowed senders: TESTPACS" in log.read_text() or process.poll() is not None, 60,
                 what="the listener's start line")
        assert f"DICOM listener {OUR_AE} on port {port}" in log.read_text(), log.read_text()
        assert echo(port) == 0x0000
        mr = [p for p in planted if "CT" not in p.name]
        assert {s.Status for s in send(port, mr)} == {0x0000}
        job = wait_for(lambda: Job.objects.filter(kind="import_dicom", status=JobStatus.SUCCEEDED).first(), 120,
                       what="the import run by the listener")
        assert ImportBatch.objects.get(job=job).files_imported == len(mr)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    assert "DICOM listener stopped" in log.read_text()
    assert leaks(log.read_text(), NEEDLES) == []


def test_only_admins_edit_the_allow_list_in_the_admin_and_it_is_validated_there(client, admin_user, coordinator):
    client.force_login(coordinator)
    assert client.get("/admin/imaging/dicomnode/").status_code == 403
    client.force_login(admin_user)
    assert client.get("/admin/imaging/dicomnode/").status_code == 200
    form = {"name": "site-pacs", "ae_title": "SITE_PACS", "host": "127.0.0.1", "port": "104", "may_send": "on",
            "dicomweb_url": "", "source_name": ""}
    assert client.post("/admin/imaging/dicomnode/add/", form).status_code == 302
    assert DicomNode.objects.get().ae_title == "SITE_PACS"
    response = client.post("/admin/imaging/dicomnode/add/", {**form, "name": "bad", "ae_title": "BAD\\TITLE"},
                           follow=True)
    assert "is not an AE title" in response.content.decode()
    assert not DicomNode.objects.filter(name="bad").exists()


def test_a_study_left_ready_without_its_import_is_imported_at_the_next_flush(listener, planted, monkeypatch):
    """The listener stopped between moving a quiet study aside and creating its import: the next flush (a
    restart's first) finds the ready folder without an import and imports it; it is never imported twice."""
    nodes.dicom_node_add(name="site-pacs", ae_title="TESTPACS", host="127.0.0.1", port=104)
    monkeypatch.setattr(listener, "quiet_seconds", 3600)
    mr = [p for p in planted if "CT" not in p.name]
    assert send(listener.port, mr)
    [folder] = listener.root.iterdir()
    folder.rename(folder.with_name("ready-left-behind"))
    assert len(listener.flush()) == 1 and listener.flush() == []
    job = Job.objects.get(kind="import_dicom")
    assert job.status == JobStatus.SUCCEEDED and ImportBatch.objects.get(job=job).files_imported == len(mr)
