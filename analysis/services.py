"""Analysis use cases: a study's statistics report, and writing every export of a study to a folder.

The statistics are always computed from the stored reads and AI results (DESIGN: never typed in). The
report is cached under a hash of the exact records it was computed from, so the page and its figures
(each a separate request) share one computation and a changed read gives a fresh one, never a stale one.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.core.cache import cache

from analysis import exports, selectors, study_stats
from reader_study.models import Study

CACHE_SECONDS = 600


@dataclass(frozen=True)
class StudyReport:
    """Everything the statistics page, the figures and the exports show about one study."""

    study_id: int
    study_name: str
    study_status: str
    evaluation_name: str | None
    chosen_subset: tuple[str, ...]
    stats: study_stats.StudyStatistics
    dnn_reported: dict
    cases_without_truth: int
    synthetic: bool
    key: str = ""          # cache key: a hash of every record the statistics came from

    @property
    def title_note(self) -> str:
        return "SYNTHETIC data" if self.synthetic else ""


def _fingerprint(study: Study, records: selectors.StudyRecords, reported: dict) -> str:
    evaluation = study.evaluation
    described = (evaluation.name, list(evaluation.chosen_subset or [])) if evaluation else None
    payload = (study.pk, study.name, study.status, study.evaluation_id, records, described,
               json.dumps(reported, sort_keys=True))
    return hashlib.sha256(pickle.dumps(payload, protocol=4)).hexdigest()


def study_report(*, study: Study) -> StudyReport:
    """The statistics of ``study`` now (see :mod:`analysis.study_stats` for what is computed and how
    incomplete readers are handled); cases without ground truth are left out and counted."""
    records = selectors.study_records(study)
    evaluation = study.evaluation
    reported = selectors.evaluation_reported_figures(evaluation)
    key = f"analysis:report:{_fingerprint(study, records, reported)}"
    report = cache.get(key)
    if report is None:
        stats = study_stats.compute(records.readers, records.cases, records.reads)
        report = StudyReport(study_id=study.pk, study_name=study.name, study_status=study.status,
                             evaluation_name=evaluation.name if evaluation else None,
                             chosen_subset=tuple(evaluation.chosen_subset or ()) if evaluation else (),
                             stats=stats, dnn_reported=reported,
                             cases_without_truth=records.cases_without_truth, synthetic=records.synthetic,
                             key=key)
        cache.set(key, report, CACHE_SECONDS)
    return report


def study_figure(*, study: Study, name: str, fmt: str) -> bytes:
    """One figure of the study's statistics as PNG or SVG bytes, cached with the report it is drawn from."""
    from analysis import figures as figure_module

    if name not in figure_module.FIGURES or fmt not in figure_module.FORMATS:
        raise ValueError(f"no figure {name}.{fmt}")
    return _figure(study_report(study=study), name, fmt)


def _figure(report: StudyReport, name: str, fmt: str) -> bytes:
    from analysis import figures as figure_module

    key = f"{report.key}:figure:{name}.{fmt}"
    content = cache.get(key)
    if content is None:
        content = figure_module.render(report.stats, name, fmt, note=report.title_note)
        cache.set(key, content, CACHE_SECONDS)
    return content


def report_contents(report: StudyReport, *, figures: bool = True) -> Iterator[tuple[str, bytes]]:
    """(relative path, bytes) of every export except the streamed reads CSV; figures under ``figures/``."""
    from analysis import figures as figure_module

    for name, content in exports.report_files(report).items():
        yield name, content.encode("utf-8")
    if figures:
        for name in figure_module.FIGURES:
            for fmt in figure_module.FORMATS:
                yield f"figures/{name}.{fmt}", _figure(report, name, fmt)


def study_export(*, study: Study, out, figures: bool = True) -> list[Path]:
    """Write every export of ``study`` into the folder ``out`` (created if needed); return the files written.

    Files: the tidy reads CSV (streamed to disk), the case audit trail (case_audit.csv, streamed too), the
    statistics CSVs, the MRMC results as CSV and JSON, a README and, with ``figures``, every figure as PNG and
    SVG under ``figures/``. Files of the same names are replaced.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reads = out / exports.READS_FILE
    with reads.open("w", newline="", encoding="utf-8") as handle:
        handle.writelines(exports.reads_csv_lines(study))
    audit = out / exports.CASE_AUDIT_FILE
    with audit.open("w", newline="", encoding="utf-8") as handle:
        handle.writelines(exports.case_audit_csv_lines(study))
    written = [reads, audit]
    for name, content in report_contents(study_report(study=study), figures=figures):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def study_export_zip(*, study: Study) -> bytes:
    """The files of :func:`study_export` (figures included) as one zip archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(exports.READS_FILE, "".join(exports.reads_csv_lines(study)))
        archive.writestr(exports.CASE_AUDIT_FILE, "".join(exports.case_audit_csv_lines(study)))
        for name, content in report_contents(study_report(study=study)):
            archive.writestr(name, content)
    return buffer.getvalue()
