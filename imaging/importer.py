"""The "import_dicom" job: files in, de-identified cases and series out, one reason per rejected file.

Runner ``run(job, ctx)``; params (see ``services.import_start``)::

    {"source": path, "manifest": path | None, "boxes": path | None,
     "upload_dir": path | None,   # a web upload: deleted after a successful import
     "label": "what was imported (never a path)", "workers": int | None,
     "source_name": "site code, the issuer of patient IDs the files and manifest do not give"}

Steps: enumerate the files (``importer_sources``: folder, zip, DICOMDIR); read each one
(``importer_files``: validate, classify from the original header, de-identify, spool the pixels),
in parallel processes when the worker allows it; group by (de-identified) series; store each series
as one volume (``importer_store``) under the case ``importer_cases`` chooses: found by the keyed hash of the
patient identity (issuer, patient key), created with a random pseudonym, or held for review apart from an
existing case the study disagrees with (never merged silently); then apply the manifest and the boxes.
Every file costs two units of progress (read, stored). One bad file never stops the others: it is
listed with its reason.

Resuming (a lost worker, a failed run) reads the files again and skips the series this import
already stored. Files are reported by index and sanitised name (``importer_sources.file_label``).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction

from imaging import (
    importer_cases,
    importer_files,
    importer_manifest,
    importer_sources,
    importer_store,
    received,
    sequences,
)
from imaging.models import Case, ImportBatch, Series
from imaging.selectors import duplicate_groups
from jobs.models import PATH_PARAMS

log = logging.getLogger(__name__)

PARALLEL_MIN_FILES = 200  # below this, starting reader processes costs more than it saves
STORE_THREADS = 2
_CHUNKSIZE = 8


@dataclass
class SeriesGroup:
    series_uid: str
    outcomes: list[importer_files.FileOutcome] = field(default_factory=list)

    @property
    def first(self) -> importer_files.FileOutcome:
        return self.outcomes[0]


@dataclass
class Tally:
    files: dict[int, importer_sources.SourceFile]
    rejected: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    groups: dict[str, SeriesGroup] = field(default_factory=dict)
    sop_seen: dict[str, int] = field(default_factory=dict)
    imported_files: int = 0
    series_done: list[int] = field(default_factory=list)
    cases_created: int = 0
    resolver: importer_cases.IssuerResolver | None = None
    placer: importer_cases.CasePlacer | None = None
    already: dict[int, list] = field(default_factory=dict)  # case pk -> [pseudonym, series already imported]

    def reject(self, index: int, reason: str) -> None:
        source = self.files.get(index)
        label = source.label if source else f"#{index}"
        self.rejected.append({"file": label, "index": index, "reason": reason})


def zip_limits() -> importer_sources.ZipLimits:
    return importer_sources.ZipLimits(
        max_total_bytes=getattr(settings, "IMAGING_ZIP_MAX_BYTES", importer_sources.DEFAULT_MAX_TOTAL_BYTES),
        max_members=getattr(settings, "IMAGING_ZIP_MAX_MEMBERS", importer_sources.DEFAULT_MAX_MEMBERS),
        max_ratio=getattr(settings, "IMAGING_ZIP_MAX_RATIO", importer_sources.DEFAULT_MAX_RATIO),
    )


def work_dir_for(job) -> Path:
    return Path(settings.UPLOAD_ROOT) / "work" / f"job-{job.pk}"


def run(job, ctx) -> None:
    """The runner. An unexpected error ends the job with a fixed reason and the exception's class name:
    an exception's message can name a server path or an archive member (``str(OSError)`` holds the file
    name, and a member's name can identify a patient), so neither the job's error nor the log gets it;
    the log gets the class and where it was raised (code files and lines only)."""
    from jobs.services import JobCancelled, JobDetached, JobError

    try:
        _run(job, ctx)
    except (JobCancelled, JobDetached, JobError):
        raise
    except Exception as error:
        log.error(
            "import job %s stopped on an unexpected %s at %s",
            job.pk,
            type(error).__name__,
            code_locations(error),
        )
        raise JobError(
            f"the import stopped on an unexpected error ({type(error).__name__}); the worker log says "
            "where. Files already stored are kept; resume the job once the cause is fixed"
        ) from None


def code_locations(error: BaseException) -> str:
    """The code locations of a traceback (file base name, line, function): no message, no argument."""
    frames = traceback.extract_tb(error.__traceback__)[-6:]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames)) or "?"


def _run(job, ctx) -> None:
    from jobs.services import JobError

    params = job.params
    batch, _ = ImportBatch.objects.get_or_create(
        job=job, defaults={"source_label": params.get("label", "import")[:255], "created_by": job.created_by}
    )
    manifest, boxes = _parse_companions(params, JobError)
    work = work_dir_for(job)
    shutil.rmtree(work, ignore_errors=True)
    (work / "spool").mkdir(parents=True)
    succeeded = False
    try:
        ctx.progress(step="listing files", force=True)
        try:
            sources = _sources(params, work)
        except FileNotFoundError:
            raise JobError("the import source does not exist (was the upload removed?)") from None
        except importer_sources.UnsafeArchive as error:
            raise JobError(f"archive refused: {error}") from None
        except ValueError as error:  # an unreadable DICOMDIR
            raise JobError(f"DICOMDIR refused: {type(error).__name__}") from None
        _use_upload_names(params, sources)
        named = _name_unnamed_source(params)
        tally = Tally(
            files={f.index: f for f in sources.files},
            rejected=list(sources.rejected),
            skipped=list(sources.skipped),
            resolver=importer_cases.IssuerResolver.for_import(source_name=params.get("source_name") or "",
                                                              manifest=manifest),
            placer=importer_cases.CasePlacer(batch=batch, manifest=manifest),
        )
        total = 2 * len(sources.files)
        ctx.progress(done=0, total=total, step=f"reading {len(sources.files)} files", force=True)
        _read_files(ctx, sources, tally, work / "spool", params.get("workers"))
        _store_series(ctx, batch, tally)
        manifest_report = _apply_manifest(manifest, tally)
        boxes_report = _apply_boxes(boxes, tally)
        _audit_added(batch, tally)
        summary = _summary(batch, sources, tally, manifest_report, boxes_report)
        summary["source_name"] = params.get("source_name") or ""
        if params.get("sender_ae"):
            summary["sender_ae"] = params["sender_ae"]
        if named:
            summary["unnamed_cases_named"] = named
        batch.files_seen = len(sources.files) + len(sources.rejected)
        batch.files_imported = tally.imported_files
        batch.rejections = tally.rejected
        batch.summary = summary
        batch.save()
        ctx.set_result(**summary)
        ctx.progress(done=total, total=total, step="finished", force=True)
        if _nothing_done(summary):
            ctx.warn(_nothing_imported_step(summary))
        log.info(
            "import batch %s: %d files imported, %d rejected, %d series",
            batch.pk,
            tally.imported_files,
            len(tally.rejected),
            summary["series"],
        )
        succeeded = True
    finally:  # a failed or cancelled import keeps its upload, to be resumed (or discarded: import_upload_discard)
        shutil.rmtree(work, ignore_errors=True)
        _remove_upload(params, succeeded=succeeded)
    _forget_paths(job)


def _sources(params: dict, work: Path) -> importer_sources.Sources:
    """The files of the import's source, or the records of the instances a DICOM listener received."""
    source = Path(params["source"])
    if params.get("received"):
        if not source.is_dir():
            raise FileNotFoundError(source)
        return received.sources(source)
    return importer_sources.enumerate_sources(source, extract_to=work / "extracted", limits=zip_limits())


def _nothing_done(summary: dict) -> bool:
    """No file imported and no manifest or box row applied: "succeeded" would hide that the import did nothing."""
    applied = sum((summary.get(part) or {}).get("applied", 0) for part in ("manifest", "boxes"))
    return not summary["files_imported"] and not applied


def _nothing_imported_step(summary: dict) -> str:
    """The warning job's step line: the counts people look for ("0 imported, 1 rejected")."""
    skipped = f", {summary['files_skipped']} skipped" if summary["files_skipped"] else ""
    return f"nothing imported: 0 imported, {summary['files_rejected']} rejected{skipped}"


def upload_discard(job) -> bool:
    """Delete the raw upload of a failed or cancelled import and forget its paths; True when there was one.
    The caller (``services.import_upload_discard``) checks who and which job."""
    had = bool(job.params.get("upload_dir")) and Path(job.params["upload_dir"]).exists()
    _remove_upload(job.params, succeeded=False, discard=True)
    _forget_paths(job)
    return had


def _forget_paths(job) -> None:
    """Paths can carry patient names (/data/DOE_JANE/...): once the import succeeded they are not needed
    (nothing is resumed) and are removed from the job's params. A failed job keeps them to be resumed."""
    from jobs.models import Job

    redacted = {
        key: ("(removed after import)" if key in PATH_PARAMS and value else value)
        for key, value in job.params.items()
    }
    job.params = redacted
    Job.objects.filter(pk=job.pk).update(params=redacted)


def _use_upload_names(params: dict, sources) -> None:
    """A web upload stores files as 000001, 000002, ...; report them under their sanitised upload names."""
    names_file = Path(params["upload_dir"]) / "names.json" if params.get("upload_dir") else None
    if sources.kind != "folder" or names_file is None or not names_file.exists():
        return
    names = json.loads(names_file.read_text())
    sources.files = [
        importer_sources.SourceFile(f.index, f.path, names.get(f.path.name, f.name)) for f in sources.files
    ]


def _parse_companions(params: dict, error_class):
    manifest = boxes = None
    if params.get("manifest"):
        manifest = importer_manifest.read_manifest(Path(params["manifest"]))
        if not manifest.ok:
            raise error_class("manifest: " + "; ".join(str(p) for p in manifest.problems[:10]))
    if params.get("boxes"):
        boxes = importer_manifest.read_boxes(Path(params["boxes"]))
        if not boxes.ok:
            raise error_class("boxes: " + "; ".join(str(p) for p in boxes.problems[:10]))
    return manifest, boxes


def _remove_upload(params: dict, *, succeeded: bool, discard: bool = False) -> None:
    """A web upload is deleted after a successful import unless KEEP_RAW_UPLOADS (a failed or cancelled one is
    kept so that the job can be resumed, until a coordinator discards it). A folder named on the command line is
    never touched."""
    upload_dir = params.get("upload_dir")
    if upload_dir and (discard or (succeeded and not getattr(settings, "KEEP_RAW_UPLOADS", False))):
        root = Path(settings.UPLOAD_ROOT).resolve()
        target = Path(upload_dir).resolve()
        if root in target.parents:
            shutil.rmtree(target, ignore_errors=True)


# --- reading ----------------------------------------------------------------------------------------


def _can_fork_workers() -> bool:
    return not multiprocessing.current_process().daemon


def _outcomes(pipeline, files, spool: Path, workers: int, *, requested: bool = False):
    """Outcomes in file order: read here, or by ``workers`` spawned processes for a large import (or
    whenever the job asked for more than one), except inside a daemonic worker that cannot fork."""
    args = [(pipeline, f.index, str(f.path), str(spool)) for f in files]
    small = len(files) < PARALLEL_MIN_FILES and not requested
    if workers <= 1 or small or not _can_fork_workers():
        for arg in args:
            yield importer_files.process_file_to_spool(*arg)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            yield from pool.map(importer_files.process_packed, args, chunksize=_CHUNKSIZE)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _workers(requested) -> int:
    if requested:
        return max(1, int(requested))
    configured = getattr(settings, "IMAGING_IMPORT_WORKERS", None)
    return max(1, int(configured)) if configured else min(2, os.cpu_count() or 1)


def _read_files(ctx, sources, tally: Tally, spool: Path, workers) -> None:
    pipeline = importer_files.Pipeline(settings.PSEUDONYM_KEY)
    series_owner: dict[str, str] = {}
    if sources.kind == "received":          # read, checked and de-identified in memory by the DICOM listener
        outcomes = received.outcomes(sources.files)
    else:
        outcomes = _outcomes(pipeline, sources.files, spool, _workers(workers), requested=bool(workers))
    for number, outcome in enumerate(outcomes, start=1):
        if isinstance(outcome, importer_files.FileRejected):
            tally.reject(outcome.index, outcome.reason)
            ctx.advance(2)
        elif isinstance(outcome, importer_files.FileSkipped):
            tally.skipped.append(
                {"file": tally.files[outcome.index].label, "index": outcome.index, "reason": outcome.reason}
            )
            ctx.advance(2)
        elif not _resolve_identity(tally, outcome):
            tally.reject(outcome.index, importer_cases.NO_ISSUER_REASON)
            ctx.advance(2)
        elif outcome.sop_uid in tally.sop_seen:
            tally.reject(
                outcome.index,
                f"duplicate instance (same SOP Instance UID as file #{tally.sop_seen[outcome.sop_uid]})",
            )
            ctx.advance(2)
        elif series_owner.setdefault(outcome.series_uid, outcome.identity) != outcome.identity:
            tally.reject(outcome.index, "belongs to another patient than the rest of its series")
            ctx.advance(2)
        else:
            tally.sop_seen[outcome.sop_uid] = outcome.index
            tally.groups.setdefault(outcome.series_uid, SeriesGroup(outcome.series_uid)).outcomes.append(
                outcome
            )
            ctx.advance(1)
        if number % 16 == 0:
            ctx.progress(step=f"reading files ({number}/{len(sources.files)})")
            ctx.check_cancel()


# --- storing ----------------------------------------------------------------------------------------


def _rule_set() -> sequences.RuleSet:
    from imaging.selectors import active_rule_set

    return active_rule_set()[0]


def _store_series(ctx, batch: ImportBatch, tally: Tally) -> None:
    """Encode and write each new series' volume in a small thread pool (numpy and zlib release the GIL,
    so two series compress at once), then record them in the database here, one by one, in order."""
    rules = _rule_set()
    existing = {s.series_uid: s for s in Series.objects.filter(series_uid__in=list(tally.groups))
                .select_related("case", "case__review_of")}
    new_groups = []
    for group in tally.groups.values():
        found = existing.get(group.series_uid)
        if found is None:
            new_groups.append(group)
            continue
        tally.placer.key_to_case(group.first.key_hash, found.case_id)
        if found.import_batch_id == batch.pk:  # stored by an earlier run of this job
            tally.imported_files += len(group.outcomes)
            tally.series_done.append(found.pk)
            tally.placer.note_existing(found.case, study=found.study_uid)
        else:
            tally.already.setdefault(found.case_id, [found.case.pseudonym, 0])[1] += 1
            where = f"import {found.import_batch_id}" if found.import_batch_id else "an earlier import"
            for outcome in group.outcomes:
                tally.reject(
                    outcome.index, f"duplicate instance (its series was already imported in {where})"
                )
        ctx.advance(len(group.outcomes))
    with ThreadPoolExecutor(max_workers=STORE_THREADS) as pool:
        prepared = pool.map(_prepare_one, new_groups)
        for number, (group, result) in enumerate(zip(new_groups, prepared, strict=True), start=1):
            ctx.check_cancel()
            ctx.progress(step=f"storing series {number}/{len(new_groups)}")
            series = _record_one(batch, group, result, tally, rules)
            if series is not None:
                tally.series_done.append(series.pk)
            ctx.advance(len(group.outcomes))


@dataclass
class Prepared:
    """A series' volume, written to the store, waiting for its database row."""

    kept: list[importer_files.FileOutcome]
    wrong_size: list[importer_files.FileOutcome]
    encoded: object = None
    volume_path: str = ""
    digest: str = ""
    error: str = ""


def _prepare_one(group: SeriesGroup) -> Prepared:
    shape = importer_store.majority_shape([o.shape for o in group.outcomes])
    prepared = Prepared(
        kept=[o for o in group.outcomes if o.shape == shape],
        wrong_size=[o for o in group.outcomes if o.shape != shape],
    )
    frames, slices, numbers = [], [], []
    for outcome in prepared.kept:
        pixels = outcome.load_pixels()
        for frame, geometry in enumerate(outcome.geometries):
            frames.append(pixels[frame])
            slices.append(geometry)
            numbers.append(geometry.instance_number)
    try:
        prepared.encoded, _ = importer_store.encode_series(frames, slices, numbers)
    except ValueError as error:
        prepared.error = _safe_error(error)
        return prepared
    prepared.volume_path, prepared.digest = importer_store.write_volume(group.series_uid, prepared.encoded)
    return prepared


def _record_one(
    batch: ImportBatch, group: SeriesGroup, prepared: Prepared, tally: Tally, rules: sequences.RuleSet
) -> Series | None:
    for outcome in prepared.wrong_size:
        tally.reject(outcome.index, "image size differs from the rest of its series")
    if prepared.error:
        for outcome in prepared.kept:
            tally.reject(outcome.index, f"series cannot be stored ({prepared.error})")
        return None
    attributes = _merged_attributes(prepared.kept)
    code, rule_id = rules.classify(attributes)
    stored_attributes = importer_files.cleaned_attributes(attributes)
    stored_attributes["flags"] = attributes.flags()
    meta = prepared.encoded.meta
    first = group.first
    with transaction.atomic():
        placement = tally.placer.place(first)
        case = placement.case
        created = placement.outcome in ("created", "held") and case.pk not in tally.placer.events
        series = Series.objects.create(
            case=case,
            series_uid=group.series_uid,
            study_uid=first.study_uid,
            series_number=first.series_number,
            mapped_code=code,
            mapped_rule=rule_id or "",
            attributes=stored_attributes,
            plane=attributes.plane or "",
            n_slices=meta["shape"][0],
            rows=meta["shape"][1],
            cols=meta["shape"][2],
            meta=meta,
            volume_path=prepared.volume_path,
            volume_sha256=prepared.digest,
            import_batch=batch,
        )
    tally.cases_created += int(created and placement.outcome == "created")
    tally.placer.note(case, placement.outcome, study=first.study_uid, series=1, target=placement.target,
                      reason=placement.reason)
    tally.imported_files += len(prepared.kept)
    return series


def _merged_attributes(outcomes: list[importer_files.FileOutcome]) -> sequences.SeriesAttributes:
    """Series attributes from its instances (what ``sequences.series_attributes`` does on datasets),
    completed from the per-frame geometry: enhanced MR keeps ImageOrientationPatient and b-values in
    functional groups, where ``extract_attributes`` does not look; and the count of temporal positions."""
    merged = sequences.merge_attributes([o.attributes for o in outcomes])
    slices = [g for o in outcomes for g in o.geometries]
    changes: dict = {}
    temporal = {g.temporal_position for g in slices if g.temporal_position is not None}
    temporal |= {o.temporal_identifier for o in outcomes if o.temporal_identifier is not None}
    if len(temporal) > merged.temporal_positions:
        changes["temporal_positions"] = len(temporal)
    if merged.image_orientation is None:
        orientation = next((g.orientation for g in slices if g.orientation is not None), None)
        if orientation is not None:
            changes["image_orientation"] = list(orientation)
    b_values = {round(g.b_value, 3) for g in slices if g.b_value is not None and g.b_value >= 0}
    if b_values - set(merged.b_values):
        changes["b_values"] = sorted(b_values | set(merged.b_values))
    if changes:
        merged = sequences.SeriesAttributes.from_dict({**merged.to_dict(), **changes})
    return merged


def _safe_error(error: Exception) -> str:
    """Our own ValueErrors from imaging.volumes name shapes and counts, never header values."""
    text = str(error)
    return text if len(text) < 160 else text[:157] + "..."


def _name_unnamed_source(params: dict) -> int:
    """When the import says so, the cases imported with no source named get its source (before any file is
    placed, so its patients find them); audited on each. Returns how many (0 on a resumed run: done before)."""
    if not params.get("unnamed_are_this_source") or not params.get("source_name"):
        return 0
    from imaging.models import CaseAudit
    from imaging.services import case_audit_record

    with transaction.atomic():
        cases = importer_cases.name_unnamed_source(params["source_name"])
        for case in cases:
            case_audit_record(case=case, action=CaseAudit.Action.DETAILS, reason="imported with no source named",
                              before={"source": ""}, after={"source": params["source_name"]})
    if cases:
        log.info("%d cases imported with no source named now have the import's source", len(cases))
    return len(cases)


def _resolve_identity(tally: Tally, outcome: importer_files.FileOutcome) -> bool:
    """Set the file's patient identity (issuer, patient key) as a keyed hash; False when the issuer is unknown
    and the platform holds more than one source (``importer_cases``)."""
    resolved = tally.resolver.identity(outcome.key_hash, outcome.issuer_hash)
    if resolved is None:
        return False
    outcome.identity, outcome.resolved_issuer = resolved
    return True


# --- manifest and boxes -----------------------------------------------------------------------------


def _identity_of(tally: Tally):
    """Patient key hash -> identity hash, for manifest and box rows of patients whose files this import did not
    carry (the manifest's institution or the import's source as the issuer)."""
    def identity(key_hash: str) -> str:
        resolved = tally.resolver.identity(key_hash)
        return resolved[0] if resolved else key_hash

    return identity


def _apply_manifest(manifest, tally: Tally) -> dict | None:
    if manifest is None:
        return None
    from imaging.services import manifest_apply

    report = manifest_apply(parsed=manifest, cases_by_key=tally.placer.case_by_key, identity=_identity_of(tally))
    held = tally.placer.held_manifest_keys()
    rows = {importer_cases.uids.patient_key_hash(settings.PSEUDONYM_KEY, r.patient_key): r for r in manifest.rows}
    for key_hash in held:
        row = rows.get(key_hash)
        event = tally.placer.events[tally.placer.case_by_key[key_hash]]
        if row is not None:
            event.manifest_note = (f"its manifest row (line {row.line}) was applied to the held study {event.case} "
                                   f"only, not to {event.target}")
    return report


def _apply_boxes(boxes, tally: Tally) -> dict | None:
    if boxes is None:
        return None
    from imaging.services import boxes_apply

    return boxes_apply(parsed=boxes, cases_by_key=tally.placer.case_by_key, identity=_identity_of(tally))


def _audit_added(batch: ImportBatch, tally: Tally) -> None:
    """A study added to an existing case is a change of that case: one audit line per case (series added)."""
    from imaging.models import CaseAudit
    from imaging.services import case_audit_record

    for case_pk, event in tally.placer.events.items():
        if event.outcome == "added":
            already = CaseAudit.objects.filter(case_id=case_pk, action=CaseAudit.Action.SERIES_ADDED,
                                               after__import_batch=batch.pk).exists()
            if not already:
                case_audit_record(case=Case.objects.get(pk=case_pk), action=CaseAudit.Action.SERIES_ADDED,
                                  after={"import_batch": batch.pk, "series": event.series,
                                         "studies": len(event.studies)},
                                  reason=f"study added by import {batch.pk}")


def _patients_report(tally: Tally) -> list[dict]:
    report = tally.placer.report()
    for case_pk, (pseudonym, n) in sorted(tally.already.items(), key=lambda item: item[1][0]):
        if case_pk not in tally.placer.events:
            report.append(importer_cases.CaseEvent(case=pseudonym, outcome="unchanged", series=n).as_dict())
    return report


def _summary(batch, sources, tally: Tally, manifest_report, boxes_report) -> dict:
    stored = Series.objects.filter(pk__in=tally.series_done)
    slices = sum(stored.values_list("n_slices", flat=True))
    codes = defaultdict(int)
    for code in stored.values_list("mapped_code", flat=True):
        codes[code] += 1
    patients = _patients_report(tally)
    return {
        "import_batch": batch.pk,
        "source_kind": sources.kind,
        "files_seen": len(sources.files) + len(sources.rejected),
        "files_imported": tally.imported_files,
        "files_rejected": len(tally.rejected),
        "files_skipped": len(tally.skipped),
        "studies": stored.values("study_uid").distinct().count(),
        "series": stored.count(),
        "slices": slices,
        "cases": stored.values("case").distinct().count(),
        "cases_created": tally.cases_created,
        "patients": patients,
        "cases_added_to": sum(1 for p in patients if p["outcome"] == "added"),
        "held_for_review": sum(1 for p in patients if p["outcome"] == "held"),
        "possible_duplicates": len(duplicate_groups(batch)),
        "series_by_code": dict(sorted(codes.items())),
        "rejected": sorted(tally.rejected, key=lambda r: (r["file"].startswith("archive"), r["index"])),
        "skipped": sorted(tally.skipped, key=lambda r: r["index"]),
        "manifest": manifest_report,
        "boxes": boxes_report,
    }
