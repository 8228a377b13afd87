"""Reads of the external validations (issue 14, item 5): who may see and start them, which evaluations and cohorts
a validation may use, the keys that say whether a cohort shares a patient with a training cohort, and the rows of
the two CSV exports. Like evaluations, external validations are for coordinators and admins only; nothing here
writes, and nothing here returns a patient identifier (cases appear by pseudonym)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from accounts.roles import is_coordinator
from core.constants import SEQUENCE_CODES
from imaging.models import CaseAlias, Cohort, CohortCase
from inference import selectors
from inference.external import CaseKeys, Overlap, patient_overlap
from inference.models import ExternalValidation


def external_validations_visible_to(user) -> QuerySet[ExternalValidation]:
    if not is_coordinator(user):
        return ExternalValidation.objects.none()
    return ExternalValidation.objects.select_related("evaluation__training_run__cohort", "cohort", "job",
                                                     "created_by")


def external_validation_for_user(user, pk: int) -> ExternalValidation:
    """Raises ExternalValidation.DoesNotExist for a missing validation and for a user who may not see it."""
    return external_validations_visible_to(user).get(pk=pk)


def can_start_external_validation(user) -> bool:
    """Every model of the run predicts every external case on a GPU worker: whoever starts evaluations."""
    return selectors.can_start_evaluation(user)


def external_cohorts() -> QuerySet[Cohort]:
    """Cohorts a validation may use: frozen ones (their truth is fixed with them)."""
    return Cohort.objects.filter(frozen=True).order_by("name")


def cohort_case_keys(cohort_id: int) -> list[CaseKeys]:
    """Each member's identity keys (source key, identity and alias hashes) and person hash."""
    rows = list(CohortCase.objects.filter(cohort_id=cohort_id)
                .values_list("case_id", "case__source_key_hash", "case__identity_hash", "case__person_hash"))
    aliases: dict[int, set[str]] = {}
    for case_id, identity in CaseAlias.objects.filter(case_id__in=[r[0] for r in rows]).values_list(
            "case_id", "identity_hash"):
        aliases.setdefault(case_id, set()).add(identity)
    return [CaseKeys(case=case_id, identities=frozenset({source, identity, *aliases.get(case_id, ())} - {""}),
                     person=person or "")
            for case_id, source, identity, person in rows]


def cohort_overlap(external_cohort_id: int, training_cohort_id: int) -> Overlap:
    return patient_overlap(cohort_case_keys(external_cohort_id), cohort_case_keys(training_cohort_id))


def cohort_members(cohort_id: int) -> list[CohortCase]:
    """The cohort's members with their cases, by pseudonym (the order of the job and of the tables)."""
    return list(CohortCase.objects.filter(cohort_id=cohort_id).select_related("case").order_by("case__pseudonym"))


# --- tables and exports ------------------------------------------------------------------------------------------

CASE_COLUMNS = ("case", "truth", "likelihood_percent", "call", "correct", "n_slices", "covered", "synthetic")
METRIC_NAMES = ("ss_avg", "sensitivity", "specificity", "accuracy", "auc")
METRIC_LABELS = {"ss_avg": "SS-Avg", "sensitivity": "Sensitivity", "specificity": "Specificity",
                 "accuracy": "Accuracy", "auc": "AUC"}
CALL_KINDS = (("likelihood", "majority of the ensembles (likelihood >= 50 %)"),
              ("ensembles", "mean over the ensembles, each at its frozen threshold"))


def case_table(validation: ExternalValidation) -> dict:
    """{"codes": the sequence columns any scored case has, "rows": per-case dicts with ``per_sequence_list``
    aligned with "codes" (None where the case lacks the sequence)}, scored cases by pseudonym."""
    cases = (validation.results or {}).get("cases") or []
    codes = [c for c in SEQUENCE_CODES if any(c in (row.get("per_sequence") or {}) for row in cases)]
    rows = [{**row, "per_sequence_list": [(row.get("per_sequence") or {}).get(code) for code in codes]}
            for row in cases]
    return {"codes": codes, "rows": rows}


def metric_table(validation: ExternalValidation) -> list[dict]:
    """One row per figure, in %: ``calls`` (how the calls were made), ``metric``, ``label``, ``estimate_percent``,
    ``ci_low_percent``, ``ci_high_percent``, ``interval`` (its method), ``n`` (the cases it is a proportion of)."""
    metrics = (validation.results or {}).get("metrics") or {}
    methods = {"ss_avg": f"patient bootstrap ({metrics.get('resamples')} resamples, seed {metrics.get('seed')}, "
                         "stratified by class)", "auc": "DeLong", "sensitivity": "Wilson", "specificity": "Wilson",
               "accuracy": "Wilson"}
    counts = {"sensitivity": metrics.get("n_sarcoma"), "specificity": metrics.get("n_leiomyoma")}
    rows = []
    for kind, calls in CALL_KINDS:
        block = metrics.get(kind)
        for name in METRIC_NAMES if block else ():
            value = block.get(name)
            if value is None:
                continue
            rows.append({"calls": calls, "kind": kind, "metric": name, "label": METRIC_LABELS[name],
                         "estimate_percent": _percent(value["estimate"]), "ci_low_percent": _percent(value["ci_low"]),
                         "ci_high_percent": _percent(value["ci_high"]), "interval": methods[name],
                         "n": counts.get(name, metrics.get("n"))})
    return rows


def case_csv_rows(validation: ExternalValidation) -> Iterator[list]:
    """Per-case calls (header first): pseudonym, frozen truth, likelihood %, the DNN's call, whether it is right,
    the case's tumour slices, whether it has any sequence of the set, synthetic, then the % of ensembles calling
    sarcoma per sequence; cases without tumour slices follow, with no call and the reason."""
    results = validation.results or {}
    table = case_table(validation)
    synthetic = int(bool(results.get("synthetic")))
    yield [*CASE_COLUMNS, *[f"{code}_percent" for code in table["codes"]], "not_scored_reason"]
    for row in table["rows"]:
        yield [row["case"], row["truth"], row["likelihood_percent"], row["call"], int(row["correct"]),
               row["n_slices"], int(row["covered"]), synthetic,
               *["" if v is None else v for v in row["per_sequence_list"]], ""]
    for row in results.get("not_scored") or []:
        yield [row["case"], row["truth"], "", "", "", 0, 0, synthetic, *["" for _ in table["codes"]], row["reason"]]


def metrics_csv_rows(validation: ExternalValidation) -> Iterator[list]:
    """``metric_table`` (header first), then the calibration bins and the Brier score."""
    metrics = (validation.results or {}).get("metrics") or {}
    yield ["calls", "metric", "estimate_percent", "ci_low_percent", "ci_high_percent", "interval", "n"]
    for row in metric_table(validation):
        yield [row["calls"], row["metric"], row["estimate_percent"], row["ci_low_percent"], row["ci_high_percent"],
               row["interval"], row["n"]]
    for b in metrics.get("calibration") or []:
        yield ["calibration", f"observed sarcoma, likelihood {b['low']:g}-{b['high']:g} %",
               *[_round(b[key]) for key in ("observed_percent", "observed_ci_low_percent", "observed_ci_high_percent")],
               "Wilson", b["n"]]
    if "brier" in metrics:
        yield ["likelihood / 100", "brier_score (0-1, not a percentage)", _round(metrics["brier"], 6), "", "", "",
               metrics.get("n")]


def _percent(value) -> float | None:
    return None if value is None else round(100.0 * float(value), 4)


def _round(value, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)
