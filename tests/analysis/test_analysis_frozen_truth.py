"""Reader statistics use the truth frozen with the study, not the live Case.truth (issue 13), and a study's
export carries its cases' audit trail (case_audit.csv) without pseudonyms. All data SYNTHETIC."""

import csv
import io
import zipfile

import pytest

from analysis import exports, selectors, services
from core.constants import LEIOMYOMA, SARCOMA
from factories_analysis import build_study, make_case
from imaging import services as imaging_services
from reader_study.models import Study
from reader_study.selectors import study_truths

pytestmark = pytest.mark.django_db


def _reader_rows(study):
    report = services.study_report(study=study)
    return exports.reader_statistics_table(report.stats).csv()


def test_statistics_after_a_correction_still_use_the_frozen_truth(coordinator):
    built = build_study()
    study, case = built["study"], built["cases"][0]
    before_stats = _reader_rows(study)
    before_reads = "".join(exports.reads_csv_lines(study))
    assert case.truth == SARCOMA

    result = imaging_services.case_correct_truth(case=case, truth=LEIOMYOMA, reason="histology revised",
                                                 by=coordinator)
    assert f"study {study.name}" in result.affected
    study.refresh_from_db()
    assert study.stale_since is not None
    case.refresh_from_db()
    assert case.truth == LEIOMYOMA                          # the live truth changed ...
    assert study_truths(study)[case.pk] == SARCOMA          # ... the study's did not
    assert selectors.study_records(study).cases[0].truth == SARCOMA
    assert _reader_rows(study) == before_stats
    assert "".join(exports.reads_csv_lines(study)) == before_reads


def test_a_study_opened_through_the_service_freezes_its_cases_truth(coordinator, reader):
    from reader_study import services as rs_services

    cases = [make_case(SARCOMA, 1, with_series=True), make_case(LEIOMYOMA, 2, with_series=True)]
    study = rs_services.study_create(name="Frozen truth (synthetic)", created_by=coordinator, cases=cases,
                                     readers=[reader])
    assert not study.frozen_truths.exists()
    rs_services.study_open(study=study, by=coordinator)
    assert dict(study.frozen_truths.values_list("case_id", "truth")) == {cases[0].pk: SARCOMA,
                                                                        cases[1].pk: LEIOMYOMA}
    imaging_services.case_correct_truth(case=cases[1], truth=SARCOMA, reason="revised", by=coordinator)
    assert study_truths(Study.objects.get(pk=study.pk))[cases[1].pk] == LEIOMYOMA


def test_the_export_holds_case_audit_csv_without_pseudonyms(coordinator, client):
    built = build_study()
    study, case = built["study"], built["cases"][1]
    imaging_services.case_correct_truth(case=case, truth=LEIOMYOMA, by=coordinator,
                                        reason=f"{case.pseudonym} was read from the wrong report")
    client.force_login(coordinator)
    response = client.get(f"/analysis/studies/{study.pk}/exports/all.zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert "case_audit.csv" in archive.namelist()
    text = archive.read("case_audit.csv").decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["case"], r["action"]) for r in rows] == [("case 002", "corrected")]
    assert rows[0]["actor"] == f"user {coordinator.pk}" and coordinator.username not in text
    assert "case 002 was read from the wrong report" == rows[0]["reason"]
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"SECRET" not in everything and b"PSN-" not in everything
    assert "case_audit.csv" in archive.read("README.txt").decode()
    single = client.get(f"/analysis/studies/{study.pk}/exports/case_audit.csv")
    assert single.status_code == 200 and b"".join(single.streaming_content).decode() == text


def test_the_data_migration_freezes_the_truth_of_studies_already_open():
    import importlib

    from django.apps import apps

    from imaging.models import Cohort, CohortCase

    migration = importlib.import_module("reader_study.migrations.0005_study_frozen_truth")
    built = build_study()
    study, cases = built["study"], built["cases"]
    cohort = Cohort.objects.create(name="frozen-before", frozen=True)
    CohortCase.objects.create(cohort=cohort, case=cases[0], truth=LEIOMYOMA)   # frozen differently from live
    Study.objects.filter(pk=study.pk).update(cohort=cohort)
    draft = Study.objects.create(name="Draft (synthetic)")
    draft.cases.set(cases[:2])
    migration.freeze_open_studies(apps, None)
    frozen = dict(study.frozen_truths.values_list("case_id", "truth"))
    assert frozen[cases[0].pk] == LEIOMYOMA and frozen[cases[1].pk] == SARCOMA and len(frozen) == len(cases)
    assert not draft.frozen_truths.exists()
