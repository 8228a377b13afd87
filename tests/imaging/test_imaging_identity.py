"""Patient identity across sites and imports held for review (issue 13, items 1, 2 and their tests).

The issue's scenario with tiny phantoms: site A's cohort is imported and frozen in a cohort; site B sends a
different patient whose source PatientID is the same (SYNTH-000001). All data SYNTHETIC."""

import csv
import io
import json
from pathlib import Path

import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from core.constants import LEIOMYOMA, SARCOMA
from imaging import deid, services, services_cohorts, services_import
from imaging.models import Case, CaseAudit
from imaging.phantoms import write_phantom_cohort
from imaging.uids import UidMap
from jobs.models import JobStatus
from jobs.services import job_create, job_run

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "SYNTH-000001"


@pytest.fixture(autouse=True)
def media(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)
    return settings


def _site(root: Path, name: str, *, seed: int, sarcoma: bool) -> Path:
    """One SYNTHETIC patient SYNTH-000001, 3 slices of 32 × 32 per series; the manifest without institution (the
    source is then the import's)."""
    out = root / name
    write_phantom_cohort(out, patients=1, sarcoma_fraction=1.0 if sarcoma else 0.0, seed=seed, slice_size=32,
                         slices_per_series=3, overlays=False)
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    for row in rows:
        row["institution"] = ""
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    return {"A": _site(root, "site-a", seed=7, sarcoma=False), "B": _site(root, "site-b", seed=8, sarcoma=True)}


def run_import(site: Path, *, manifest=True, boxes=True, source=None, **kwargs) -> dict:
    params = services.import_params(source=site / "dicom" if source is None else source,
                                    manifest=site / "manifest.csv" if manifest else None,
                                    boxes=site / "boxes.csv" if boxes else None, **kwargs)
    job = job_run(job_pk=job_create(kind="import_dicom", params=params, enqueue=False).pk, worker="test-inline")
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job.result


def state(case: Case) -> dict:
    case.refresh_from_db()
    return {"truth": case.truth, "subtype": case.subtype, "review": case.review_reason,
            "series": sorted(case.series.values_list("pk", flat=True)),
            "boxes": case.series.filter(boxes__isnull=False).count()}


@pytest.fixture
def site_a_frozen(sites):
    """Site A imported (its source named) and frozen in a cohort (build_cohort, the command)."""
    result = run_import(sites["A"], source_name="site-A")
    assert result["cases_created"] == 1 and result["patients"][0]["outcome"] == "created"
    case = Case.objects.get()
    call_command("build_cohort", "site-a", "--cases", "all", "--inline", stdout=io.StringIO())
    assert case.cohorts.get().frozen
    return case


def test_b_from_another_source_is_a_new_case_and_a_keeps_its_series_and_truth(sites, site_a_frozen):
    a = site_a_frozen
    before = state(a)
    assert before["truth"] == LEIOMYOMA and len(before["series"]) > 1
    result = run_import(sites["B"], source_name="site-B")
    assert state(a) == before
    assert result["cases_created"] == 1 and result["cases_added_to"] == 0 and result["held_for_review"] == 0
    b = Case.objects.exclude(pk=a.pk).get()
    assert b.truth == SARCOMA and not b.review_reason and b.issuer_hash and b.series.count() == result["series"]
    assert result["patients"] == [{"case": b.pseudonym, "outcome": "created", "series": result["series"],
                                   "studies": 1, "text": f"new case {b.pseudonym} ({result['series']} series)"}]
    assert result["source_name"] == "site-B"
    # the same patient sent again by site B lands in B's case; site A's resend in A's
    run_import(sites["B"], source_name="site-B", boxes=False)
    assert Case.objects.count() == 2
    # two sources now: an import must name its source
    with pytest.raises(ValidationError) as refused:
        services.import_params(source=sites["A"] / "dicom")
    assert "source_name" in refused.value.message_dict
    assert "2 sources" in refused.value.message_dict["source_name"][0]
    # unless the manifest names every patient's institution (their issuer)
    with_institution = sites["A"] / "manifest-with-institution.csv"
    rows = [{**row, "institution": "A"} for row in csv.DictReader((sites["A"] / "manifest.csv").open())]
    with with_institution.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert services.import_params(source=sites["A"] / "dicom", manifest=with_institution)["source_name"] == ""


def test_b_from_the_same_source_with_conflicting_data_is_held_and_a_is_unchanged(sites, site_a_frozen,
                                                                                 coordinator, tmp_path):
    a = site_a_frozen
    before = state(a)
    result = run_import(sites["B"])
    assert state(a) == before  # series, truth (leiomyoma, not B's sarcoma) and boxes
    held = Case.objects.held().get()
    assert held.review_of == a and held.truth == SARCOMA  # B's manifest went to the held study only
    assert "frozen in cohort site-a" in held.review_reason
    assert "manifest gives class sarcoma" in held.review_reason
    assert "another birth date" in held.review_reason
    assert result["held_for_review"] == 1 and result["cases_created"] == 0 and result["cases_added_to"] == 0
    [patient] = result["patients"]
    assert patient["outcome"] == "held" and patient["existing_case"] == a.pseudonym
    assert f"study held for review as {held.pseudonym}" in patient["text"] and a.pseudonym in patient["text"]
    assert "not to " + a.pseudonym in patient["text"]  # the manifest's truth was not applied to A
    # invisible to cohorts, studies, training and readers
    assert list(Case.objects.usable()) == [a]
    with pytest.raises(ValidationError):
        services_cohorts.cohort_create(name="with-held", cases=[held])
    # "same patient" cannot join a frozen case
    with pytest.raises(ValidationError, match="frozen by cohort site-a"):
        services_import.import_review_resolve(case=held, decision="same", by=coordinator)
    assert state(a) == before
    # "new patient": a case of its own
    case = services_import.import_review_resolve(case=held, decision="new", by=coordinator, reason="other site")
    assert case.pk == held.pk and not case.review_reason and case in Case.objects.usable()
    assert case.audit.get(action=CaseAudit.Action.SERIES_ADDED).after["decision"] == "new patient"
    assert state(a) == before
    # B's next study finds B's case (same issuer and ID, the same birth date), not A's
    result = run_import(sites["B"], source=_new_study_of(sites["B"], tmp_path / "b2"), manifest=False, boxes=False)
    assert result["cases_added_to"] == 1 and result["patients"][0]["case"] == case.pseudonym
    assert state(a) == before and Case.objects.count() == 2


def test_same_patient_on_a_case_that_is_not_frozen_joins_it(sites, coordinator, client):
    run_import(sites["A"])
    a = Case.objects.get()
    n_a = a.series.count()
    result = run_import(sites["B"])
    held = Case.objects.held().get()
    assert result["held_for_review"] == 1 and "frozen" not in held.review_reason
    assert a.series.count() == n_a and Case.objects.get(pk=a.pk).truth == LEIOMYOMA
    n_b = held.series.count()
    # the import page lists it with the two buttons; "same patient" joins it
    client.force_login(coordinator)
    page = client.get(f"/imaging/imports/{held.import_batch_id}/").content.decode()
    assert held.pseudonym in page and "Same patient" in page and "New patient" in page
    assert "1 to resolve" in client.get("/imaging/imports/").content.decode()
    # the held case's own page says it is held, why, and offers the same two decisions
    case_page = client.get(f"/imaging/cases/{held.pk}/").content.decode()
    assert 'id="held-note"' in case_page and a.pseudonym in case_page and "Same patient" in case_page
    assert f"/imaging/imports/held/{held.pk}/resolve/" in case_page
    # the first import's page names its new case
    first = client.get(f"/imaging/imports/{a.import_batch_id}/").content.decode()
    assert 'id="created-cases"' in first and f"new case {a.pseudonym}" in first
    response = client.post(f"/imaging/imports/held/{held.pk}/resolve/", {"decision": "same"})
    assert response.status_code == 302
    a.refresh_from_db()
    assert a.series.count() == n_a + n_b and a.truth == LEIOMYOMA
    assert not Case.objects.filter(pk=held.pk).exists()
    merged = a.audit.get(action=CaseAudit.Action.MERGED)
    assert merged.actor == coordinator and merged.after["held_case"] == held.pseudonym


def test_resending_a_own_study_is_idempotent(sites, site_a_frozen):
    a = site_a_frozen
    before = state(a)
    result = run_import(sites["A"])
    assert state(a) == before and Case.objects.count() == 1 and result["series"] == 0
    assert result["cases_created"] == result["cases_added_to"] == result["held_for_review"] == 0
    [patient] = result["patients"]
    assert patient["outcome"] == "unchanged" and patient["text"].startswith(f"nothing added to {a.pseudonym}")


def _new_study_of(site: Path, out: Path, suffix: str = ".9", **changes) -> Path:
    """A copy of the site's files as a second study of the same patient (other UIDs), with ``changes``."""
    out.mkdir()
    for n, path in enumerate(sorted((site / "dicom").rglob("*.dcm"))):
        ds = pydicom.dcmread(path)
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            setattr(ds, keyword, getattr(ds, keyword) + suffix)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for keyword, value in changes.items():
            setattr(ds, keyword, value)
        ds.save_as(out / f"IM{n:04d}.dcm")
    return out


def test_a_new_study_that_agrees_is_added_and_the_summary_and_json_say_so(sites, tmp_path, coordinator):
    run_import(sites["A"])
    a = Case.objects.get()
    n_a = a.series.count()
    second = _new_study_of(sites["A"], tmp_path / "second")
    out = io.StringIO()
    call_command("import_dicom", str(second), "--json", "--inline", stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert result["cases_added_to"] == 1 and result["cases_created"] == 0
    assert result["patients"][0]["text"].startswith(f"study added to existing case {a.pseudonym}")
    assert a.series.count() == 2 * n_a
    assert a.audit.get(action=CaseAudit.Action.SERIES_ADDED).after["series"] == n_a
    out = io.StringIO()  # the plain summary says it too (re-sent: nothing added)
    call_command("import_dicom", str(second), "--inline", stdout=out, stderr=io.StringIO())
    assert f"nothing added to {a.pseudonym}" in out.getvalue()


def test_issuer_of_patient_id_in_the_files_keeps_patients_apart(sites, tmp_path, coordinator):
    run_import(sites["A"], source_name="site-A")
    a = Case.objects.get()
    other = _new_study_of(sites["A"], tmp_path / "issuer", IssuerOfPatientID="PHANTOM HOSPITAL B (SYNTHETIC)")
    result = run_import(sites["A"], source=other, manifest=False, boxes=False)
    assert result["cases_created"] == 1 and Case.objects.count() == 2
    new = Case.objects.exclude(pk=a.pk).get()
    assert new.issuer_hash and new.source_key_hash != a.source_key_hash
    assert new.source_key_hash == services.source_identity_hash(KEY, "phantom hospital b  (synthetic)")


def test_an_unnamed_first_source_holds_a_named_namesake_until_named(sites, tmp_path, coordinator):
    """The first source needs no name; its patients then have no issuer. A named import whose patient ID is
    theirs is held (it may be the same source); --unnamed-are-this-source names them, and that source's next
    study is added without a hold."""
    run_import(sites["A"])
    a = Case.objects.get()
    before = state(a)
    result = run_import(sites["B"], source_name="site-B")
    held = Case.objects.held().get()
    assert state(a) == before and held.review_of == a and "with no source named" in held.review_reason
    assert result["held_for_review"] == 1 and result["patients"][0]["existing_case"] == a.pseudonym
    services_import.import_review_resolve(case=held, decision="new", by=coordinator)
    # site A names itself on its next import, and says that the unnamed cases are its own
    second = _new_study_of(sites["A"], tmp_path / "a2")
    result = run_import(sites["A"], source=second, manifest=False, boxes=False, source_name="site-A",
                        unnamed_are_this_source=True)
    assert result["unnamed_cases_named"] == 1 and result["cases_added_to"] == 1 and result["held_for_review"] == 0
    assert result["patients"][0]["case"] == a.pseudonym
    a.refresh_from_db()
    assert a.issuer_hash and a.series.count() == 2 * len(before["series"])
    assert a.audit.filter(action=CaseAudit.Action.DETAILS, after={"source": "site-A"}).count() == 1
    with pytest.raises(ValidationError, match="name the source"):
        services.import_params(source=second, unnamed_are_this_source=True)


def test_two_cases_of_one_identity_hold_a_study_the_files_cannot_place(sites, tmp_path, coordinator):
    """After "new patient", two cases share an identity; a study that fits both is held, naming both."""
    run_import(sites["A"])
    a = Case.objects.get()
    Case.objects.filter(pk=a.pk).update(birth_date_hash="", sex_hash="")
    twin = _new_study_of(sites["A"], tmp_path / "twin", ".7")
    Case.objects.filter(pk=a.pk).update(truth="")  # nothing conflicts: it is added, then split off by hand
    run_import(sites["A"], source=twin, manifest=False, boxes=False)
    second = Case.objects.create(pseudonym="C-TWIN0001", source_key_hash="split-for-test",
                                 identity_hash=Case.objects.get(pk=a.pk).identity_hash)
    third = _new_study_of(sites["A"], tmp_path / "third", ".6", PatientBirthDate="", PatientSex="")
    result = run_import(sites["A"], source=third, manifest=False, boxes=False)
    held = Case.objects.held().get()
    assert result["held_for_review"] == 1 and "2 cases have this patient identity" in held.review_reason
    assert a.pseudonym in held.review_reason and second.pseudonym in held.review_reason
    # the old identity (no issuer) is the old hash of the patient key alone: earlier cases are found as before
    assert a.source_key_hash == services.source_key_hash(KEY) == services.source_identity_hash(KEY)


def test_a_case_from_before_issuers_is_held_once_then_known_under_its_issuer(sites, tmp_path, coordinator):
    run_import(sites["A"])
    a = Case.objects.get()
    Case.objects.filter(pk=a.pk).update(identity_hash="")  # as migrated: imported before issuers existed
    n_a = a.series.count()
    issuer = {"IssuerOfPatientID": "PHANTOM GENERAL HOSPITAL A (SYNTHETIC)"}
    result = run_import(sites["A"], source=_new_study_of(sites["A"], tmp_path / "s2", ".8", **issuer),
                        manifest=False, boxes=False)
    held = Case.objects.held().get()
    assert held.review_of == a and "before issuers" in held.review_reason and result["held_for_review"] == 1
    services_import.import_review_resolve(case=held, decision="same", by=coordinator)
    a.refresh_from_db()
    assert a.series.count() == 2 * n_a and a.identity_hash and a.source_key_hash == services.source_key_hash(KEY)
    result = run_import(sites["A"], source=_new_study_of(sites["A"], tmp_path / "s3", ".7", **issuer),
                        manifest=False, boxes=False)
    assert result["cases_added_to"] == 1 and a.series.count() == 3 * n_a


def test_the_profile_strips_the_issuer_and_nothing_stores_it(sites, tmp_path):
    path = next((sites["A"] / "dicom").rglob("*.dcm"))
    ds = pydicom.dcmread(path)
    ds.IssuerOfPatientID = "PHANTOM HOSPITAL B (SYNTHETIC)"
    clean = deid.deidentify(ds, uid_map=UidMap("k" * 32), pseudonym="C-TEST0001")
    assert "IssuerOfPatientID" not in clean
    other = _new_study_of(sites["A"], tmp_path / "issuer", IssuerOfPatientID="PHANTOM HOSPITAL B (SYNTHETIC)")
    run_import(sites["A"], source=other, manifest=False, boxes=False)
    out = io.StringIO()
    call_command("dumpdata", "imaging", stdout=out)
    assert "PHANTOM HOSPITAL B" not in out.getvalue().upper()


def test_source_name_is_an_option_of_the_command_and_the_upload_form(sites):
    from imaging.forms import UploadOptionsForm

    assert {"source_name", "unnamed_are_this_source"} <= set(UploadOptionsForm().fields)
    with pytest.raises(ValidationError):
        services.import_params(source=sites["A"] / "dicom", source_name="x" * 65)
    run_import(sites["A"], source_name="site-A")
    out = io.StringIO()
    call_command("import_dicom", str(sites["B"] / "dicom"), "--source-name", "site-B", "--json", "--inline",
                 stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    assert result["source_name"] == "site-B" and result["cases_created"] == 1 and Case.objects.count() == 2


def test_the_upload_page_asks_for_the_source_once_there_are_two(sites, client, coordinator):
    from jobs.models import Job

    run_import(sites["A"])
    run_import(sites["B"], source_name="site-B", boxes=False)
    client.force_login(coordinator)
    data = next((sites["B"] / "dicom").rglob("*.dcm")).read_bytes()
    jobs = Job.objects.count()

    def upload(**fields):
        handle = io.BytesIO(data)
        handle.name = "IM0001"
        return client.post("/imaging/import/", {"files": handle, **fields})

    response = upload()
    assert response.status_code == 400 and "source_name" in response.content.decode()
    assert "2 sources" in response.content.decode() and Job.objects.count() == jobs
    response = upload(source_name="site-B")
    assert response.status_code == 302 and Job.objects.count() == jobs + 1
    assert Job.objects.order_by("-pk").first().params["source_name"] == "site-B"


def test_same_patient_on_a_frozen_case_is_a_correction_with_a_reason(sites, site_a_frozen, coordinator, reader):
    a = site_a_frozen
    n_a = a.series.count()
    run_import(sites["B"], source=_new_study_of(sites["A"], sites["A"].parent / "a-frozen-2", ".5"),
               manifest=False, boxes=False)
    held = Case.objects.held().get()
    assert "frozen in cohort site-a" in held.review_reason
    with pytest.raises(ValidationError, match="coordinator"):
        services_import.import_review_resolve(case=held, decision="same", by=reader, reason="x")
    with pytest.raises(ValidationError, match="needs a reason"):
        services_import.import_review_resolve(case=held, decision="same", by=coordinator)
    services_import.import_review_resolve(case=held, decision="same", by=coordinator,
                                          reason="second study of the same patient, sent late")
    a.refresh_from_db()
    cohort = a.cohorts.get()
    assert a.series.count() == 2 * n_a and cohort.stale_since and "sent late" in cohort.stale_reason
    merged = a.audit.get(action=CaseAudit.Action.MERGED)
    assert merged.after["affected"] == ["cohort site-a"] and merged.reason.endswith("sent late")


def test_one_patient_id_under_two_issuers_in_one_import_leaves_its_manifest_row_unapplied(sites, tmp_path):
    """Two patients with one ID (different Issuer of Patient ID) in one import: the manifest row of that ID is
    ambiguous, so it is applied to neither, and the summary says why."""
    both = tmp_path / "both"
    both.mkdir()
    _new_study_of(sites["A"], both / "x", ".4", IssuerOfPatientID="PHANTOM HOSPITAL X (SYNTHETIC)")
    _new_study_of(sites["A"], both / "y", ".3", IssuerOfPatientID="PHANTOM HOSPITAL Y (SYNTHETIC)")
    result = run_import(sites["A"], source=both, boxes=False)
    assert result["cases_created"] == 2
    assert set(Case.objects.values_list("truth", flat=True)) == {""}
    assert "more than one case" in result["manifest"]["ambiguous"][0]
