"""A real PACS (issue 17, item 4): Orthanc, started by the test on spare loopback ports, holds a SYNTHETIC study with
identifiers planted everywhere and pushes it to the platform's listener (`/modalities/{id}/store`): it is imported
de-identified with no planted identifier anywhere; its malformed instance is refused with a reason while the rest
imports; while Orthanc's AE title is not on the allow-list, its push is refused and nothing is stored."""

import io
import logging

import pytest
from django.core.management import call_command
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
