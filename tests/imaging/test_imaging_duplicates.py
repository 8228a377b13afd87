"""Possible duplicate patients (issue 14, item 9): a keyed hash of name + birth date + sex kept at import (never
the values), cases sharing it under different patient IDs flagged to the coordinator, merged or dismissed before
folds are drawn. All data SYNTHETIC (phantom DICOM with fake names)."""

import shutil
from pathlib import Path

import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from pydicom.uid import generate_uid

from core.constants import LEIOMYOMA, SARCOMA
from imaging import selectors, services, services_cohorts, services_import
from imaging.models import Case, CaseAlias, CaseAudit
from imaging.phantoms import write_phantom_cohort
from imaging.uids import person_hash
from jobs.models import JobStatus
from jobs.services import job_create, job_run
from tests.imaging.factories_imaging import make_synthetic_case

KEY = b"k" * 32


# --- the hash ---------------------------------------------------------------------------------------------

def test_person_hash_reads_names_loosely_and_never_hashes_too_little():
    base = person_hash(KEY, "Doe^Jane", "19700101", "F")
    assert base == person_hash(KEY, "DOE^JANE^^^", "19700101", "f") == person_hash(KEY, " doe  jane ", "19700101", "F")
    assert base != person_hash(KEY, "Doe^Jane", "19700102", "F")   # birth date counts
    assert base != person_hash(KEY, "Doe^Jane", "19700101", "M")   # so does sex
    assert base != person_hash(b"x" * 32, "Doe^Jane", "19700101", "F")   # keyed: another site's key, another hash
    assert person_hash(KEY, "", "19700101", "F") == "" and person_hash(KEY, "Doe^Jane", "", "F") == ""
    assert len(base) == 64 and "JANE" not in base.upper()


# --- selector and services on cases made directly -----------------------------------------------------------

@pytest.fixture
def pair(db):
    person = "a" * 64
    return (make_synthetic_case(LEIOMYOMA, person_hash=person, institution="site-A"),
            make_synthetic_case(LEIOMYOMA, person_hash=person))


def test_cases_sharing_a_person_hash_are_one_group_for_coordinators_only(pair, coordinator, reader):
    make_synthetic_case(person_hash="b" * 64)                     # alone: not flagged
    make_synthetic_case(person_hash="")                          # no name or birth date: never flagged
    assert [[c.pk for c in g] for g in selectors.possible_duplicates(coordinator)] == [[pair[0].pk, pair[1].pk]]
    assert selectors.possible_duplicates(reader) == []


def test_merge_joins_series_keeps_the_identity_as_an_alias_and_is_audited(pair, coordinator):
    keep, merged = pair
    merged.truth = ""
    merged.save()
    keep.truth, keep.subtype = LEIOMYOMA, ""
    keep.save()
    with pytest.raises(ValidationError, match="say why"):
        services_import.case_merge(case=merged, into=keep, by=coordinator, reason=" ")
    services_import.case_merge(case=merged, into=keep, by=coordinator, reason="same woman, registered twice")
    assert not Case.objects.filter(pk=merged.pk).exists()
    assert CaseAlias.objects.get().case == keep
    assert CaseAlias.objects.get().identity_hash == merged.source_key_hash
    audit = CaseAudit.objects.get(case=keep, action=CaseAudit.Action.MERGED)
    assert audit.reason == "same woman, registered twice" and audit.after["merged_case"] == merged.pseudonym
    assert selectors.possible_duplicates(coordinator) == []


def test_merge_is_refused_for_a_frozen_case_unflagged_pairs_and_readers(pair, coordinator, reader):
    keep, merged = pair
    services_cohorts.cohort_create(name="pilot", cases=[keep], user=coordinator)
    with pytest.raises(ValidationError, match="frozen by cohort pilot"):
        services_import.case_merge(case=merged, into=keep, by=coordinator, reason="same")
    other = make_synthetic_case(person_hash="c" * 64)
    with pytest.raises(ValidationError, match="not flagged as possible duplicates"):
        services_import.case_merge(case=other, into=merged, by=coordinator, reason="same")
    with pytest.raises(ValidationError):
        services_import.case_merge(case=merged, into=merged, by=coordinator, reason="same")
    with pytest.raises(ValidationError, match="signed-in coordinator"):
        services_import.case_merge(case=merged, into=keep, by=reader, reason="same")
    assert Case.objects.filter(pk=merged.pk).exists()


def test_different_people_are_no_longer_listed_until_another_case_shares_the_hash(pair, coordinator):
    assert services_import.case_duplicates_dismiss(cases=pair, by=coordinator, reason="twins") == 2
    assert selectors.possible_duplicates(coordinator) == []
    assert CaseAudit.objects.filter(action=CaseAudit.Action.DETAILS, reason="twins").count() == 2
    third = make_synthetic_case(person_hash=pair[0].person_hash)
    assert [c.pk for c in selectors.possible_duplicates(coordinator)[0]] == [pair[0].pk, pair[1].pk, third.pk]
    with pytest.raises(ValidationError, match="one group"):
        services_import.case_duplicates_dismiss(cases=[pair[0], make_synthetic_case(person_hash="d" * 64)],
                                                by=coordinator)


def test_a_cohort_refuses_undecided_duplicates_and_takes_them_once_decided(pair, coordinator):
    with pytest.raises(ValidationError, match=f"{pair[0].pseudonym} and {pair[1].pseudonym}"):
        services_cohorts.cohort_create(name="pilot", cases=pair, user=coordinator)
    services_import.case_duplicates_dismiss(cases=pair, by=coordinator, reason="different people: checked")
    assert services_cohorts.cohort_create(name="pilot", cases=pair, user=coordinator).members.count() == 2


# --- the pages ---------------------------------------------------------------------------------------------

def test_the_page_lists_groups_and_its_forms_merge_and_dismiss(client, pair, coordinator, reader):
    client.force_login(reader)
    assert client.get(reverse("imaging_case_duplicates")).status_code == 403
    client.force_login(coordinator)
    page = client.get(reverse("imaging_case_duplicates")).content.decode()
    assert pair[0].pseudonym in page and pair[1].pseudonym in page and "Same person: merge" in page
    listing = client.get(reverse("imaging_case_list")).content.decode()
    assert 'id="duplicates-note"' in listing and "1 group of possible duplicate patients" in listing
    assert 'id="duplicates-note"' in client.get(reverse("imaging_cohort_list")).content.decode()
    refused = client.post(reverse("imaging_case_duplicates_merge"),
                          {"case": pair[1].pk, "into": pair[0].pk, "reason": ""}, follow=True)
    assert "say why" in refused.content.decode() and Case.objects.filter(pk=pair[1].pk).exists()
    done = client.post(reverse("imaging_case_duplicates_merge"),
                       {"case": pair[1].pk, "into": pair[0].pk, "reason": "one person"}, follow=True)
    assert f"now in {pair[0].pseudonym}" in done.content.decode()
    assert not Case.objects.filter(pk=pair[1].pk).exists()
    assert 'id="no-duplicates"' in done.content.decode()


def test_the_dismiss_form(client, pair, coordinator):
    client.force_login(coordinator)
    done = client.post(reverse("imaging_case_duplicates_dismiss"),
                       {"cases": [pair[0].pk, pair[1].pk], "reason": "different birth places"}, follow=True)
    assert "2 cases marked as different people" in done.content.decode()
    assert Case.objects.filter(duplicate_checked=True).count() == 2


# --- at import: the hash is kept, the pair flagged, a merged identity finds its case again ---------------------

@pytest.fixture
def media(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)
    return settings


def _copy_as(source: Path, out: Path, patient_id: str, tag: str) -> Path:
    """The same SYNTHETIC person's study under another patient ID, with new study, series and instance UIDs."""
    shutil.copytree(source, out)
    for path in out.rglob("*"):
        if path.is_file():
            ds = pydicom.dcmread(path)
            ds.PatientID = patient_id
            for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                setattr(ds, name, generate_uid(entropy_srcs=[str(getattr(ds, name)), tag]))
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(path)
    return out


def _import(folder: Path) -> dict:
    params = services.import_params(source=folder, manifest=None, boxes=None)
    job = job_run(job_pk=job_create(kind="import_dicom", params=params, enqueue=False).pk, worker="test-inline")
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job.result


@pytest.mark.django_db(transaction=True)
def test_an_import_flags_the_same_person_under_another_id_and_a_merge_sticks(media, tmp_path, coordinator):
    write_phantom_cohort(tmp_path / "site", patients=1, sarcoma_fraction=1.0, seed=11, slice_size=32,
                         slices_per_series=2, overlays=False)
    first = _import(tmp_path / "site" / "dicom")
    assert first["possible_duplicates"] == 0
    name = str(pydicom.dcmread(next(p for p in (tmp_path / "site" / "dicom").rglob("*") if p.is_file())).PatientName)
    second = _import(_copy_as(tmp_path / "site" / "dicom", tmp_path / "copy", "SYNTH-OTHER-ID", "copy"))
    assert second["cases_created"] == 1 and second["possible_duplicates"] == 1
    keep, dup = selectors.possible_duplicates(coordinator)[0]
    assert keep.person_hash == dup.person_hash and len(keep.person_hash) == 64
    stored = {str(v) for v in Case.objects.values_list(*[f.attname for f in Case._meta.concrete_fields]).get(pk=dup.pk)}
    parts = [part.upper() for part in name.split("^") if len(part) > 2]
    assert parts and not any(part in value.upper() for value in stored for part in parts)
    services_import.case_merge(case=dup, into=keep, by=coordinator, reason="one person, two registrations")
    n_series = keep.series.count()
    third = _import(_copy_as(tmp_path / "site" / "dicom", tmp_path / "again", "SYNTH-OTHER-ID", "again"))
    assert third["cases_created"] == 0 and third["possible_duplicates"] == 0
    assert Case.objects.count() == 1 and keep.series.count() > n_series
    assert Case.objects.get().truth in ("", SARCOMA)
