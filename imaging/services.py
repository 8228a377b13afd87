"""Writes on imaging: imports, cases and ground truth, manifests and boxes, mapping rules and overrides.

One function per use case, keyword-only, validate then save. Cohorts are in ``services_cohorts.py``.
Messages name the field, line or series and the reason, never an identifying value.
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from core.constants import CASE_ATTRIBUTES, SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging import importer_manifest, sequences
from imaging.models import Case, ImportBatch, SequenceRuleSet, Series, TumourBox
from imaging.uids import patient_key_hash

PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud without mistakes
PSEUDONYM_LENGTH = 8
CASE_FIELDS = ("truth", *CASE_ATTRIBUTES)


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


def case_update(*, case: Case, **values) -> Case:
    """Edit a case's ground truth and descriptors (class, subtype, institution, dimensions, flags)."""
    unknown = set(values) - set(CASE_FIELDS)
    if unknown:
        raise ValidationError({name: "not an editable case field" for name in sorted(unknown)})
    for name, value in values.items():
        setattr(case, name, value)
    case.full_clean(exclude=["pseudonym", "source_key_hash"])
    case.save(update_fields=list(values) or None)
    return case


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
) -> dict:
    """The params of an "import_dicom" job, checked. ``label`` says what was imported, never a path."""
    source = Path(source)
    if not source.exists():
        raise ValidationError({"source": "does not exist"})
    import_check_companions(manifest=manifest, boxes=boxes)
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
    }


def import_start(*, user=None, **kwargs):
    """Start an "import_dicom" job (see ``import_params``); returns the Job."""
    from jobs.services import job_create

    return job_create(kind="import_dicom", params=import_params(**kwargs), user=user)


def upload_dir_new() -> Path:
    """A fresh folder under UPLOAD_ROOT for one web upload (random name: no user input in paths)."""
    path = Path(settings.UPLOAD_ROOT) / f"upload-{uuid.uuid4().hex}"
    (path / "files").mkdir(parents=True)
    return path


# --- manifest and boxes -----------------------------------------------------------------------------


@transaction.atomic
def manifest_apply(*, parsed: importer_manifest.Parsed) -> dict:
    """Write a checked manifest onto the cases it names (found by keyed hash). Returns a report;
    rows whose patient has no case are listed by line number."""
    applied, unmatched = 0, []
    for row in parsed.rows:
        case = Case.objects.filter(source_key_hash=source_key_hash(row.patient_key)).first()
        if case is None:
            unmatched.append(row.line)
            continue
        if row.values:
            case_update(case=case, **row.values)
        applied += 1
    return {
        "rows": len(parsed.rows),
        "applied": applied,
        "unmatched_lines": unmatched,
        "ignored_columns": parsed.ignored_columns,
    }


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
def boxes_apply(*, parsed: importer_manifest.Parsed) -> dict:
    """Write checked boxes onto the stored series (matched by patient, series number, instance number).
    A box a coordinator drew is kept. Returns a report with problems by line number. Reads the cases,
    series and existing boxes once, then writes in bulk: a phantom cohort has thousands of boxes."""
    keys = {row.patient_key for row in parsed.rows}
    hashes = {key: source_key_hash(key) for key in keys}
    case_ids = dict(
        Case.objects.filter(source_key_hash__in=hashes.values()).values_list("source_key_hash", "pk")
    )
    series_by_number: dict[tuple[int, int | None], list[Series]] = {}
    for series in Series.objects.filter(case_id__in=case_ids.values()).only(
        "pk", "case_id", "series_number", "n_slices", "rows", "cols", "meta"
    ):
        series_by_number.setdefault((series.case_id, series.series_number), []).append(series)
    existing = {
        (b.series_id, b.slice_index): b
        for b in TumourBox.objects.filter(series__case_id__in=case_ids.values())
    }
    created, updated, kept_drawn, problems = {}, [], 0, []
    for row in parsed.rows:
        case_id = case_ids.get(hashes[row.patient_key])
        if case_id is None:
            problems.append(f"line {row.line}: no case for this patient (not imported)")
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
    return {
        "rows": len(parsed.rows),
        "applied": len(created) + len(updated),
        "kept_drawn": kept_drawn,
        "problems": problems[:200],
        "problem_count": len(problems),
    }


def box_save(*, series: Series, slice_index: int, x0: int, y0: int, x1: int, y1: int, user=None) -> TumourBox:
    """Store the box a coordinator drew on one slice (replacing that slice's box)."""
    errors = {}
    if not 0 <= slice_index < series.n_slices:
        errors["slice_index"] = f"must be between 0 and {series.n_slices - 1}"
    if not (0 <= x0 < x1 <= series.cols):
        errors["x"] = f"need 0 ≤ x0 < x1 ≤ {series.cols}"
    if not (0 <= y0 < y1 <= series.rows):
        errors["y"] = f"need 0 ≤ y0 < y1 ≤ {series.rows}"
    if errors:
        raise ValidationError(errors)
    box, _ = TumourBox.objects.update_or_create(
        series=series,
        slice_index=slice_index,
        defaults={
            "x0": x0,
            "y0": y0,
            "x1": x1,
            "y1": y1,
            "source": TumourBox.Source.DRAWN,
            "drawn_by": user if user is not None and user.is_authenticated else None,
        },
    )
    return box


def box_delete(*, series: Series, slice_index: int) -> bool:
    deleted, _ = TumourBox.objects.filter(series=series, slice_index=slice_index).delete()
    return bool(deleted)


# --- sequence mapping -------------------------------------------------------------------------------


def series_override_set(*, series: Series, code: str) -> Series:
    """A coordinator's correction of a series' sequence code ('' removes it; the rule's code applies)."""
    if code and code not in (*SEQUENCE_CODES, UNUSED_SEQUENCE):
        raise ValidationError(
            {
                "override_code": f"not a sequence code; use one of {', '.join(SEQUENCE_CODES)} "
                f"or {UNUSED_SEQUENCE}"
            }
        )
    series.override_code = code or ""
    series.save(update_fields=["override_code"])
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
    """Run the active rules again on stored series (their cleaned attributes); overrides stay.

    Rules that test words not kept by the description cleaning can decide differently than at
    import; the report counts the series whose code changed.
    """
    from imaging.selectors import active_rule_set

    rules, _ = active_rule_set()
    queryset = series if series is not None else Series.objects.all()
    changed = total = 0
    for item in queryset.only("pk", "attributes", "mapped_code", "mapped_rule"):
        attrs = {k: v for k, v in (item.attributes or {}).items() if k != "flags"}
        try:
            code, rule_id = rules.classify(sequences.SeriesAttributes.from_dict(attrs))
        except (TypeError, ValueError):
            continue
        total += 1
        if (code, rule_id or "") != (item.mapped_code, item.mapped_rule):
            Series.objects.filter(pk=item.pk).update(mapped_code=code, mapped_rule=rule_id or "")
            changed += 1
    return {"series": total, "changed": changed}


def rules_as_text(rule_set: SequenceRuleSet | None) -> str:
    """The rules as pretty JSON for the editor (the shipped defaults when none is saved)."""
    if rule_set is None:
        return sequences.DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    return json.dumps(rule_set.rules, indent=2)
