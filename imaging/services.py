"""Writes on imaging: imports, cases and ground truth, manifests and boxes, mapping rules and overrides.

One function per use case, keyword-only, validate then save. Cohorts are in ``services_cohorts.py``.
Messages name the field, line or series and the reason, never an identifying value.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.constants import CASE_ATTRIBUTES, CLASS_CHOICES, SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging import frozen, importer_manifest, sequences
from imaging.models import Case, CaseAudit, Cohort, ImportBatch, SequenceRuleSet, Series, TumourBox
from imaging.uids import patient_key_hash

log = logging.getLogger(__name__)

PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud without mistakes
PSEUDONYM_LENGTH = 8
CASE_FIELDS = ("truth", *CASE_ATTRIBUTES)
FROZEN_FIELDS = ("truth", "subtype")   # with the boxes and series: what a frozen case keeps (issue 13)


# --- cases ------------------------------------------------------------------------------------------


def new_pseudonym() -> str:
    """A random case pseudonym such as ``C-7KQ2M9XD``: random, so it carries nothing of the source."""
    while True:
        candidate = "C-" + "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(PSEUDONYM_LENGTH))
        if not Case.objects.filter(pseudonym=candidate).exists():
            return candidate


def source_key_hash(source_key: str) -> str:
    """The keyed hash (HMAC-SHA256 with settings.PSEUDONYM_KEY) that links a source patient key to a case."""
    return patient_key_hash(settings.PSEUDONYM_KEY, source_key)


def source_identity_hash(source_key: str, issuer: str = "") -> str:
    """The keyed hash of a patient identity (issuer, source patient key); without an issuer the old hash of the
    key alone (``uids.patient_identity_hash``). A case's ``source_key_hash`` is this for the patient it was
    created for."""
    from imaging.uids import issuer_hash, patient_identity_hash

    return patient_identity_hash(settings.PSEUDONYM_KEY, source_key_hash(source_key),
                                 issuer_hash(settings.PSEUDONYM_KEY, issuer))


def case_get_or_create(
    *, key_hash: str, synthetic: bool = False, import_batch: ImportBatch | None = None
) -> tuple[Case, bool]:
    """The case of a source patient (by keyed hash), created under a new random pseudonym if new."""
    case = Case.objects.filter(source_key_hash=key_hash).first()
    if case is not None:
        return case, False
    try:
        with transaction.atomic():
            return Case.objects.create(
                pseudonym=new_pseudonym(),
                source_key_hash=key_hash,
                is_synthetic=synthetic,
                import_batch=import_batch,
            ), True
    except IntegrityError:  # another worker created it a moment ago
        return Case.objects.get(source_key_hash=key_hash), False


def _user(by):
    return by if by is not None and getattr(by, "is_authenticated", False) else None


def require_coordinator(by, what: str) -> None:
    """Refuse a write on frozen or held cases by anyone but a signed-in coordinator (or admin): the views check
    the role too, this keeps the rule where the write is, for the command line and any later caller."""
    from accounts.roles import is_coordinator

    if _user(by) is None or not is_coordinator(by):
        raise ValidationError({"by": f"{what} is made by a signed-in coordinator"})


def case_audit_record(*, case: Case, action: str, before: dict | None = None, after: dict | None = None,
                      by=None, reason: str = "") -> CaseAudit:
    """One line of a case's audit trail (``CaseAudit``): who (None for an import or a job), what, before and
    after. Callers pass only non-identifying values (classes, subtypes, box corners, series ids, numbers and
    codes; never a source key, UID or file name). Every service that changes a case calls this, the importer
    too (``series_added``, ``merged``)."""
    if action not in CaseAudit.Action.values:
        raise ValueError(f"unknown case audit action {action!r}")
    return CaseAudit.objects.create(case=case, action=action, before=before or {}, after=after or {},
                                    actor=_user(by), reason=reason or "")


def _audit_field_changes(case: Case, before: dict, after: dict, *, by, reason: str = "") -> None:
    """Audit lines for changed case fields: one for the truth, one for the subtype, one for the rest."""
    groups = {CaseAudit.Action.TRUTH: ("truth",), CaseAudit.Action.SUBTYPE: ("subtype",),
              CaseAudit.Action.DETAILS: tuple(f for f in CASE_FIELDS if f not in FROZEN_FIELDS)}
    for action, names in groups.items():
        changed = [n for n in names if n in after and before.get(n) != after[n]]
        if changed:
            case_audit_record(case=case, action=action, by=by, reason=reason,
                              before={n: before.get(n) for n in changed}, after={n: after[n] for n in changed})


def case_update(*, case: Case, by=None, **values) -> Case:
    """Edit a case's ground truth and descriptors (class, subtype, institution, dimensions, flags).

    A frozen case (``imaging.frozen``) keeps its truth and subtype: changing either is refused with the
    cohorts and studies that freeze it named (``case_correct`` is the way); its other descriptors stay
    editable. Every change is audited (``CaseAudit``)."""
    unknown = set(values) - set(CASE_FIELDS)
    if unknown:
        raise ValidationError({name: "not an editable case field" for name in sorted(unknown)})
    before = {name: getattr(case, name) for name in values}
    if any(before[n] != values[n] for n in FROZEN_FIELDS if n in values):
        frozen.refuse_if_frozen(case, "changed")
    for name, value in values.items():
        setattr(case, name, value)
    case.full_clean(exclude=["pseudonym", "source_key_hash"])
    with transaction.atomic():
        case.save(update_fields=list(values) or None)
        _audit_field_changes(case, before, {n: getattr(case, n) for n in values}, by=by)
    return case


# --- corrections of frozen cases ---------------------------------------------------------------------

_UNCHANGED = object()


@dataclass
class Correction:
    """What ``case_correct`` did: the changed values and every cohort, evaluation and study it marked stale."""

    case: Case
    before: dict
    after: dict
    affected: list[str] = field(default_factory=list)
    audit: CaseAudit | None = None


def _series_record(series: Series) -> dict:
    return {"series": series.pk, "number": series.series_number, "code": series.sequence_code,
            "slices": series.n_slices}


@transaction.atomic
def case_correct(*, case: Case, reason: str, by, truth=_UNCHANGED, subtype=_UNCHANGED,
                 remove_series=()) -> Correction:
    """The one way to change a frozen case (issue 13): correct its ground truth or subtype, or take series off
    it (two patients' images in one case). Requires a reason; audited as one ``corrected`` line.

    It does not change what was built on the case behind its back: every frozen cohort holding the case keeps
    its frozen truth (``CohortCase.truth``) and is marked stale (``stale_since``/``stale_reason``: rebuild
    needed), and so is every evaluation and reader study on it. imaging cannot import inference or reader_study
    (docs/architecture.md), so they register a stale marker with ``imaging.frozen.register_stale_marker`` (in
    their ``AppConfig.ready()``), called here inside this transaction *before* the case changes, so a study can
    still freeze the truth it had. The result names everything marked stale (``Correction.affected``).
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "a correction needs a reason (it is kept in the case's audit trail)"})
    require_coordinator(by, "a correction")
    case = Case.objects.select_for_update().get(pk=case.pk)
    before, after = {}, {}
    if truth is not _UNCHANGED and (truth or "") != case.truth:
        if truth and truth not in {v for v, _ in CLASS_CHOICES}:
            raise ValidationError({"truth": "not a class"})
        before["truth"], after["truth"] = case.truth, truth or ""
    if subtype is not _UNCHANGED and (subtype or "").strip() != case.subtype:
        before["subtype"], after["subtype"] = case.subtype, (subtype or "").strip()[:64]
    series_ids = sorted({int(getattr(s, "pk", s)) for s in remove_series})
    removed = list(case.series.filter(pk__in=series_ids).order_by("pk"))
    if len(removed) != len(series_ids):
        raise ValidationError({"remove_series": "a series to remove is not a series of this case"})
    if removed:
        before["series"] = [_series_record(s) for s in removed]
        after["series"] = []
    if not before:
        raise ValidationError("nothing to correct: the values are the ones the case has")
    now = timezone.now()
    summary = "; ".join(
        [f"{name} {before[name] or '(none)'} → {after[name] or '(none)'}" for name in ("truth", "subtype")
         if name in before] + ([f"{len(removed)} series removed"] if removed else []))
    affected = mark_built_on_stale(case, f"{case.pseudonym} corrected on {now:%Y-%m-%d} ({summary}): {reason}",
                                   at=now)
    for name in ("truth", "subtype"):
        if name in after:
            setattr(case, name, after[name])
    if "truth" in after or "subtype" in after:
        case.full_clean(exclude=["pseudonym", "source_key_hash"])
        case.save(update_fields=[n for n in ("truth", "subtype") if n in after])
    for series, record in zip(removed, before.get("series", []), strict=True):
        series.delete()   # its boxes go with it; the volume file stays in the store
        case_audit_record(case=case, action=CaseAudit.Action.SERIES_REMOVED, by=by, reason=reason, before=record)
    audit = case_audit_record(case=case, action=CaseAudit.Action.CORRECTED, by=by, reason=reason,
                              before=before, after={**after, "affected": affected})
    return Correction(case=case, before=before, after=after, affected=affected, audit=audit)


def mark_built_on_stale(case: Case, text: str, *, at) -> list[str]:
    """Mark stale every frozen cohort holding the case, and (through ``imaging.frozen``'s registry) every
    evaluation and reader study on it; ``text`` says what changed. Returns their labels. Call it inside the
    transaction of the change, before the case changes (a study freezes the truth it had first)."""
    cohorts = list(Cohort.objects.select_for_update().filter(frozen=True, members__case=case).order_by("name"))
    for cohort in cohorts:
        cohort.stale_since = cohort.stale_since or at
        cohort.stale_reason = "\n".join(filter(None, [cohort.stale_reason, text]))
        cohort.save(update_fields=["stale_since", "stale_reason"])
    affected = [f"cohort {c.name}" for c in cohorts]
    for marker in frozen.stale_markers():
        affected += marker(case_ids=[case.pk], cohort_ids=[c.pk for c in cohorts], reason=text, at=at)
    return affected


def case_correct_truth(*, case: Case, truth: str, reason: str, by, subtype=_UNCHANGED) -> Correction:
    """Correct the ground truth (and optionally the subtype) of a case; see ``case_correct``."""
    return case_correct(case=case, truth=truth, subtype=subtype, reason=reason, by=by)


def case_replace_series(*, case: Case, remove_series, reason: str, by) -> Correction:
    """Take series that do not belong to the case off it (the right ones come by a new import, which adds them
    to the case or holds them for review); see ``case_correct``."""
    return case_correct(case=case, remove_series=remove_series, reason=reason, by=by)


# --- imports ----------------------------------------------------------------------------------------


def import_check_companions(*, manifest: Path | None = None, boxes: Path | None = None) -> None:
    """Check a manifest and a boxes CSV before an import starts; ValidationError lists the problems."""
    errors = {}
    if manifest:
        parsed = importer_manifest.read_manifest(Path(manifest))
        if not parsed.ok:
            errors["manifest"] = [str(p) for p in parsed.problems[:20]]
    if boxes:
        parsed = importer_manifest.read_boxes(Path(boxes))
        if not parsed.ok:
            errors["boxes"] = [str(p) for p in parsed.problems[:20]]
    if errors:
        raise ValidationError(errors)


def import_params(
    *,
    source: Path,
    manifest: Path | None = None,
    boxes: Path | None = None,
    label: str = "",
    upload_dir: Path | None = None,
    workers: int | None = None,
    source_name: str = "",
    unnamed_are_this_source: bool = False,
) -> dict:
    """The params of an "import_dicom" job, checked. ``label`` says what was imported, never a path.

    ``source_name`` names where the files come from (a site code such as "site-B"): the issuer of their patient IDs
    when the files carry no Issuer of Patient ID and the manifest no institution (``importer_cases``). It is
    required once the platform holds cases from more than one source. ``unnamed_are_this_source`` says that the
    cases imported so far with no source named came from this one (``importer_cases.name_unnamed_source``)."""
    source = Path(source)
    if not source.exists():
        raise ValidationError({"source": "does not exist"})
    import_check_companions(manifest=manifest, boxes=boxes)
    source_name = " ".join(str(source_name or "").split())
    if len(source_name) > 64:
        raise ValidationError({"source_name": "at most 64 characters (a site code, e.g. site-B)"})
    if unnamed_are_this_source and not source_name:
        raise ValidationError({"source_name": "name the source that the cases imported without one came from"})
    if not source_name and not _manifest_names_every_institution(manifest):
        from imaging.importer_cases import platform_sources, source_required_message

        sources = platform_sources()
        if len(sources) > 1:
            raise ValidationError({"source_name": source_required_message(len(sources))})
    kind = (
        "folder"
        if source.is_dir()
        else "DICOMDIR"
        if source.name.upper() == "DICOMDIR"
        else "file or archive"
    )
    return {
        "source": str(source.resolve()),
        "manifest": str(Path(manifest).resolve()) if manifest else None,
        "boxes": str(Path(boxes).resolve()) if boxes else None,
        "upload_dir": str(Path(upload_dir).resolve()) if upload_dir else None,
        "label": (label or f"import of a {kind}")[:255],
        "workers": workers,
        "source_name": source_name,
        "unnamed_are_this_source": bool(unnamed_are_this_source),
    }


def _manifest_names_every_institution(manifest: Path | None) -> bool:
    """True when a manifest gives every patient's institution (then it is their issuer: no source needed)."""
    if not manifest:
        return False
    parsed = importer_manifest.read_manifest(Path(manifest))
    return bool(parsed.rows) and all((row.values.get("institution") or "").strip() for row in parsed.rows)


def import_start(*, user=None, **kwargs):
    """Start an "import_dicom" job (see ``import_params``); returns the Job."""
    from jobs.services import job_create

    return job_create(kind="import_dicom", params=import_params(**kwargs), user=user)


def import_received_start(*, folder: Path, sender_ae: str, instances: int, source_name: str = "",
                          enqueue: bool = True, user=None):
    """The import of one study the DICOM listener received (`imaging.received`: already read, checked and
    de-identified in memory); its folder is deleted once the import succeeded. Returns the Job."""
    from jobs.services import job_create

    params = import_params(source=folder, upload_dir=folder, source_name=source_name,
                           label=f"{instances} instance(s) received over DICOM from {sender_ae}")
    params.update(received=True, sender_ae=sender_ae)
    return job_create(kind="import_dicom", params=params, enqueue=enqueue, user=user)


def import_upload_discard(*, job, by) -> bool:
    """Discard the raw upload that a failed or cancelled web import keeps for a resume (it holds the files as sent,
    identifying data included): the files go, the job forgets its paths and can no longer be resumed; what the
    import stored (de-identified series) stays. Coordinators only. Returns whether an upload was deleted."""
    from imaging import importer
    from jobs.models import NOT_RESUMABLE, Job, JobStatus

    require_coordinator(by, "discarding an upload")
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=getattr(job, "pk", job))
        if job.kind != "import_dicom" or not job.params.get("upload_dir"):
            raise ValidationError(f"job {job.pk} is not a web upload's import")
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED) or job.worker_lost:
            raise ValidationError(f"job {job.pk} is {job.display_status}: only a failed or cancelled import's "
                                  f"upload can be discarded (cancel it first)")
        had = importer.upload_discard(job)
        job.refresh_from_db()
        job.params = {**job.params, NOT_RESUMABLE: "its upload was discarded; upload the files again"}
        job.save(update_fields=["params"])
    log.info("upload of import job %s discarded by user %s", job.pk, by.pk)
    return had


def upload_dir_new() -> Path:
    """A fresh folder under UPLOAD_ROOT for one web upload (random name: no user input in paths)."""
    path = Path(settings.UPLOAD_ROOT) / f"upload-{uuid.uuid4().hex}"
    (path / "files").mkdir(parents=True)
    return path


# --- manifest and boxes -----------------------------------------------------------------------------


def _case_ids_for_keys(keys, cases_by_key: dict | None = None, identity=None) -> dict[str, int]:
    """{source patient key: case pk} for the keys that have a case. An import passes ``cases_by_key`` (patient key
    hash -> the case it put the patient's files in) and ``identity`` (patient key hash -> identity hash, with the
    issuer the import resolves: ``importer_cases``); without them a key is looked up under the old hash of the
    patient key alone (cases imported before issuers)."""
    hashes = {key: source_key_hash(key) for key in keys}
    found = {key: cases_by_key[h] for key, h in hashes.items() if cases_by_key and h in cases_by_key}
    rest = {key: (identity(h) if identity else h) for key, h in hashes.items() if key not in found}
    by_hash = dict(Case.objects.filter(source_key_hash__in=set(rest.values())).values_list("source_key_hash", "pk"))
    found.update({key: by_hash[h] for key, h in rest.items() if h in by_hash})
    return found


@transaction.atomic
def manifest_apply(*, parsed: importer_manifest.Parsed, cases_by_key: dict | None = None, identity=None) -> dict:
    """Write a checked manifest onto the cases it names (found by keyed hash; see ``_case_ids_for_keys``).
    Returns a report; rows whose patient has no case are listed by line number."""
    applied, unmatched, refused = 0, [], []
    case_of_key = _case_ids_for_keys({row.patient_key for row in parsed.rows}, cases_by_key, identity)
    for row in parsed.rows:
        if row.patient_key in case_of_key and case_of_key[row.patient_key] is None:
            refused.append(f"line {row.line}: this import put the patient's files into more than one case (two "
                           f"issuers of the same patient ID, or a study held for review): the row was not applied; "
                           f"set its values on each case's page")
            continue
        case = Case.objects.filter(pk=case_of_key.get(row.patient_key)).first()
        if case is None:
            unmatched.append(row.line)
            continue
        values = dict(row.values)
        if any(values[n] != getattr(case, n) for n in FROZEN_FIELDS if n in values):
            labels = frozen.frozen_labels(case)
            if labels:   # a frozen case keeps its truth and subtype; the rest of the row applies
                refused.append(f"line {row.line}: {case.pseudonym} is frozen by {', '.join(labels)}: its "
                               f"truth and subtype were not changed")
                values = {n: v for n, v in values.items() if n not in FROZEN_FIELDS}
        if values:
            case_update(case=case, **values)
        applied += 1
    report = {
        "rows": len(parsed.rows),
        "applied": applied,
        "unmatched_lines": unmatched,
        "ignored_columns": parsed.ignored_columns,
    }
    if refused:
        report["frozen_refused"] = [r for r in refused if "frozen by" in r][:200]
        report["ambiguous"] = [r for r in refused if "frozen by" not in r][:200]
        report = {k: v for k, v in report.items() if v != []}
    return report


def _slice_for(series: Series, row: importer_manifest.BoxRow) -> tuple[int | None, str | None]:
    if row.slice_index is not None:
        if row.slice_index >= series.n_slices:
            return None, f"slice_index beyond the series' {series.n_slices} slices"
        return row.slice_index, None
    numbers = series.meta.get("instance_numbers") or []
    hits = [i for i, n in enumerate(numbers) if n == row.instance_number]
    if not hits:
        return None, "no slice of the series has this instance number"
    if len(hits) > 1:
        return None, f"the instance number matches {len(hits)} slices (a multi-frame file): give slice_index"
    return hits[0], None


@transaction.atomic
def boxes_apply(*, parsed: importer_manifest.Parsed, cases_by_key: dict | None = None, identity=None) -> dict:
    """Write checked boxes onto the stored series (matched by patient, series number, instance number).
    A box a coordinator drew is kept. Returns a report with problems by line number. Reads the cases,
    series and existing boxes once, then writes in bulk: a phantom cohort has thousands of boxes."""
    case_ids = _case_ids_for_keys({row.patient_key for row in parsed.rows}, cases_by_key, identity)
    series_by_number: dict[tuple[int, int | None], list[Series]] = {}
    for series in Series.objects.filter(case_id__in=case_ids.values()).only(
        "pk", "case_id", "series_number", "n_slices", "rows", "cols", "meta"
    ):
        series_by_number.setdefault((series.case_id, series.series_number), []).append(series)
    existing = {
        (b.series_id, b.slice_index): b
        for b in TumourBox.objects.filter(series__case_id__in=case_ids.values())
    }
    frozen_cases = frozen.frozen_by([pk for pk in case_ids.values() if pk is not None])
    created, updated, kept_drawn, problems = {}, [], 0, []
    for row in parsed.rows:
        case_id = case_ids.get(row.patient_key)
        if case_id is None:
            why = ("this import put the patient's files into more than one case (two issuers of the same patient "
                   "ID, or a study held for review): draw the box on the case's page" if row.patient_key in case_ids
                   else "no case for this patient (not imported)")
            problems.append(f"line {row.line}: {why}")
            continue
        if case_id in frozen_cases:
            problems.append(f"line {row.line}: the case is frozen by {', '.join(frozen_cases[case_id])}: "
                            f"its boxes are not changed")
            continue
        matches = series_by_number.get((case_id, row.series_number), [])
        if len(matches) != 1:
            problems.append(
                f"line {row.line}: "
                + (
                    "no series with this series_number in the case"
                    if not matches
                    else "several series share this series_number"
                )
            )
            continue
        series = matches[0]
        index, problem = _slice_for(series, row)
        if problem:
            problems.append(f"line {row.line}: {problem}")
            continue
        x0, y0, x1, y1 = row.box
        if x1 > series.cols or y1 > series.rows:
            problems.append(f"line {row.line}: box outside the {series.cols}×{series.rows} image")
            continue
        box = existing.get((series.pk, index))
        if box is not None and box.source == TumourBox.Source.DRAWN:
            kept_drawn += 1
        elif box is not None:
            box.x0, box.y0, box.x1, box.y1 = x0, y0, x1, y1
            updated.append(box)
        else:
            created[(series.pk, index)] = TumourBox(
                series=series, slice_index=index, x0=x0, y0=y0, x1=x1, y1=y1, source=TumourBox.Source.MANIFEST
            )
    TumourBox.objects.bulk_create(created.values(), batch_size=1000)
    TumourBox.objects.bulk_update(updated, ["x0", "y0", "x1", "y1"], batch_size=1000)
    case_of_series = {s.pk: s.case_id for group in series_by_number.values() for s in group}
    counts: dict[tuple[int, str], int] = {}
    for series_id, action in [*((k[0], CaseAudit.Action.BOX_ADDED) for k in created),
                              *((b.series_id, CaseAudit.Action.BOX_CHANGED) for b in updated)]:
        key = (case_of_series[series_id], action)
        counts[key] = counts.get(key, 0) + 1
    CaseAudit.objects.bulk_create([CaseAudit(case_id=case_id, action=action, after={"boxes": n, "source": "boxes CSV"})
                                   for (case_id, action), n in sorted(counts.items())])
    return {
        "rows": len(parsed.rows),
        "applied": len(created) + len(updated),
        "kept_drawn": kept_drawn,
        "problems": problems[:200],
        "problem_count": len(problems),
    }


def _box_record(box: TumourBox) -> dict:
    return {"series": box.series_id, "slice_index": box.slice_index,
            "box": [box.x0, box.y0, box.x1, box.y1], "source": box.source}


def _box_correction(series: Series, slice_index: int, *, reason: str, user, what: str) -> None:
    """On a frozen case a box change is a correction (issue 13): refused without a reason; with one, by a
    coordinator only, and every cohort, evaluation and study built on the case is marked stale first."""
    labels = frozen.frozen_labels(series.case)
    if not labels:
        return
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(frozen.frozen_message(series.case, labels, "changed (its tumour boxes included)")
                              + "; to correct a box, give the reason", code="frozen")
    require_coordinator(user, "a box correction")
    now = timezone.now()
    mark_built_on_stale(series.case, f"{series.case.pseudonym} corrected on {now:%Y-%m-%d} ({what} on slice "
                                     f"{slice_index + 1} of series {series.series_number or series.pk}): {reason}",
                        at=now)


def box_save(*, series: Series, slice_index: int, x0: int, y0: int, x1: int, y1: int, user=None,
             reason: str = "") -> TumourBox:
    """Store the box a coordinator drew on one slice (replacing that slice's box); audited. On a frozen case it is
    a correction: refused without a ``reason`` (``_box_correction``)."""
    errors = {}
    if not 0 <= slice_index < series.n_slices:
        errors["slice_index"] = f"must be between 0 and {series.n_slices - 1}"
    if not (0 <= x0 < x1 <= series.cols):
        errors["x"] = f"need 0 ≤ x0 < x1 ≤ {series.cols}"
    if not (0 <= y0 < y1 <= series.rows):
        errors["y"] = f"need 0 ≤ y0 < y1 ≤ {series.rows}"
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        _box_correction(series, slice_index, reason=reason, user=user, what="box drawn")
        old = TumourBox.objects.select_for_update().filter(series=series, slice_index=slice_index).first()
        before = _box_record(old) if old else {}
        box, created = TumourBox.objects.update_or_create(
            series=series,
            slice_index=slice_index,
            defaults={
                "x0": x0,
                "y0": y0,
                "x1": x1,
                "y1": y1,
                "source": TumourBox.Source.DRAWN,
                "drawn_by": _user(user),
            },
        )
        case_audit_record(case=series.case, by=user, before=before, after=_box_record(box), reason=reason,
                          action=CaseAudit.Action.BOX_ADDED if created else CaseAudit.Action.BOX_CHANGED)
    return box


def box_copy_to_tumour_slices(*, series: Series, slice_index: int, user=None, reason: str = "") -> list[TumourBox]:
    """Copy the box of ``slice_index`` to the series' other tumour slices that have no box (METHOD §3).

    A series has no stored tumour-slice range, so its tumour slices are those from its first to its last boxed
    slice; the copy fills the unboxed ones among them and never replaces a box. Each copy goes through
    ``box_save`` (audited per box; on a frozen case refused without a ``reason``), all in one transaction.
    Returns the new boxes, slice order.
    """
    boxes = {b.slice_index: b for b in TumourBox.objects.filter(series=series, slice_index__lt=series.n_slices)}
    source = boxes.get(slice_index)
    if source is None:
        raise ValidationError({"slice_index": f"slice {slice_index} has no box to copy"})
    first, last = min(boxes), max(boxes)
    targets = [k for k in range(first, last + 1) if k not in boxes]
    if not targets:
        raise ValidationError({"slice_index": f"no tumour slice without a box: slices {first}–{last} all have "
                                              "one (the tumour slices run from the first to the last boxed slice)"})
    with transaction.atomic():
        return [box_save(series=series, slice_index=k, x0=source.x0, y0=source.y0, x1=source.x1, y1=source.y1,
                         user=user, reason=reason) for k in targets]


def box_delete(*, series: Series, slice_index: int, user=None, reason: str = "") -> bool:
    """Delete one slice's box; audited; on a frozen case a correction that needs a ``reason``."""
    box = TumourBox.objects.filter(series=series, slice_index=slice_index).first()
    if box is None:
        return False
    with transaction.atomic():
        _box_correction(series, slice_index, reason=reason, user=user, what="box removed")
        before = _box_record(box)
        deleted, _ = TumourBox.objects.filter(pk=box.pk).delete()
        if deleted:
            case_audit_record(case=series.case, action=CaseAudit.Action.BOX_REMOVED, by=user, before=before,
                              reason=reason)
    return bool(deleted)


# --- sequence mapping -------------------------------------------------------------------------------


def series_override_set(*, series: Series, code: str, user=None) -> Series:
    """A coordinator's correction of a series' sequence code ('' removes it; the rule's code applies).

    Refused when it changes the code of a series of a frozen case (a cohort build reads the codes); audited."""
    if code and code not in (*SEQUENCE_CODES, UNUSED_SEQUENCE):
        raise ValidationError(
            {
                "override_code": f"not a sequence code; use one of {', '.join(SEQUENCE_CODES)} "
                f"or {UNUSED_SEQUENCE}"
            }
        )
    if (code or "") == series.override_code:
        return series
    before = {"series": series.pk, "code": series.sequence_code}
    new_code = code or series.mapped_code
    if new_code != series.sequence_code:
        frozen.refuse_if_frozen(series.case, "changed (its series' sequence codes included)")
    with transaction.atomic():
        series.override_code = code or ""
        series.save(update_fields=["override_code"])
        if new_code != before["code"]:
            case_audit_record(case=series.case, action=CaseAudit.Action.SERIES_CODE, by=user, before=before,
                              after={"series": series.pk, "code": series.sequence_code})
    return series


def ruleset_save(*, name: str, rules, user=None, activate: bool = True) -> SequenceRuleSet:
    """Save a rule set (JSON text, or the parsed list/object) after validation; optionally make it the
    active one. ValidationError lists every problem as "where: why"."""
    if not name or not str(name).strip():
        raise ValidationError({"name": "a rule set needs a name"})
    try:
        rule_set = (
            sequences.rules_from_json(rules, source="rules")
            if isinstance(rules, str)
            else sequences.validate_rules(rules)
        )
    except sequences.RuleValidationError as error:
        raise ValidationError({"rules": [f"{where}: {why}" for where, why in error.errors]}) from None
    with transaction.atomic():
        record, _ = SequenceRuleSet.objects.update_or_create(
            name=str(name).strip(),
            defaults={
                "rules": rule_set.to_json_data(),
                "updated_by": user if user and user.is_authenticated else None,
            },
        )
        if activate:
            SequenceRuleSet.objects.exclude(pk=record.pk).update(is_active=False)
            record.is_active = True
            record.save(update_fields=["is_active"])
    return record


def series_remap(*, series=None) -> dict:
    """Run the active rules again on stored series (their cleaned attributes); overrides stay, and so do the
    codes of frozen cases' series (counted in ``kept_frozen``).

    Rules that test words not kept by the description cleaning can decide differently than at
    import; the report counts the series whose code changed.
    """
    from imaging.selectors import active_rule_set

    rules, _ = active_rule_set()
    queryset = series if series is not None else Series.objects.all()
    changed = total = kept_frozen = 0
    items = list(queryset.only("pk", "case_id", "attributes", "mapped_code", "mapped_rule", "override_code"))
    frozen_cases = frozen.frozen_by({item.case_id for item in items})
    for item in items:
        attrs = {k: v for k, v in (item.attributes or {}).items() if k != "flags"}
        try:
            code, rule_id = rules.classify(sequences.SeriesAttributes.from_dict(attrs))
        except (TypeError, ValueError):
            continue
        total += 1
        if (code, rule_id or "") != (item.mapped_code, item.mapped_rule):
            if item.case_id in frozen_cases and not item.override_code and code != item.mapped_code:
                kept_frozen += 1   # a frozen case keeps its series' codes (issue 13)
                continue
            Series.objects.filter(pk=item.pk).update(mapped_code=code, mapped_rule=rule_id or "")
            changed += 1
    return {"series": total, "changed": changed, "kept_frozen": kept_frozen}


def rules_as_text(rule_set: SequenceRuleSet | None) -> str:
    """The rules as pretty JSON for the editor (the shipped defaults when none is saved)."""
    if rule_set is None:
        return sequences.DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    return json.dumps(rule_set.rules, indent=2)
