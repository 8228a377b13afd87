"""Which case an imported study goes to (issue 13): patient identity, and never a silent merge.

A patient is (issuer, patient ID). The issuer is Issuer of Patient ID (0010,0021) when the files carry it, else
the manifest's ``institution`` for that patient, else the *source* the coordinator named for the import
(``source_name``), else, when the platform holds cases of exactly one source, that source. Both go into one keyed
hash (``uids.patient_identity_hash``); without an issuer it is the old hash of the patient key alone, so cases
imported before issuers existed are found as before.

A study whose patient already has a case is added to it only when nothing disagrees: the sex and birth-date hashes
of the files (when both sides have one), and the manifest's class against the case's ground truth; and only when
the case is not frozen (in a built cohort or an opened reader study, ``imaging.frozen``). Otherwise the study is
*held for review*: its series go to a new case marked ``review_reason`` (naming the existing one in
``review_of``), which no cohort, study, training or evaluation can use (``Case.objects.usable()``) until a
coordinator resolves it (``services_import.import_review_resolve``: "same patient" or "new patient"). Every case an
import touches gets a line in its summary.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from imaging import frozen, uids
from imaging.models import Case, ImportBatch

NO_ISSUER_REASON = (
    "no issuer for its patient ID: the platform holds cases from more than one source, so the import must "
    "name its source (source_name: --source-name on the command line, the Source field of the upload page), "
    "or the files carry Issuer of Patient ID, or the manifest gives the patient's institution"
)


def platform_sources() -> list[str]:
    """The issuer hashes of the cases on the platform ("" for cases without an issuer), each once."""
    return sorted(set(Case.objects.values_list("issuer_hash", flat=True).distinct()))


def name_unnamed_source(source_name: str) -> list[Case]:
    """Give the cases imported with no source named (no issuer) the issuer ``source_name``: the coordinator says
    they came from that source, so that its later imports find their patients (issue 13). Their identity becomes
    (source, patient ID); the pseudonyms stay. Idempotent: the cases it renamed have an issuer afterwards.
    Returns them (the caller audits)."""
    secret = settings.PSEUDONYM_KEY
    issuer = uids.issuer_hash(secret, source_name)
    if not issuer:
        raise ValueError("a source name is needed")
    cases = list(Case.objects.select_for_update().filter(issuer_hash="").order_by("pk"))
    for case in cases:
        key_hash = case.identity_hash or case.source_key_hash
        case.identity_hash = uids.patient_identity_hash(secret, key_hash, issuer)
        case.issuer_hash = issuer
        case.save(update_fields=["identity_hash", "issuer_hash"])
    return cases


def source_required_message(sources: int) -> str:
    return (f"the platform holds cases from {sources} sources: name the source of this import (source_name: "
            f"--source-name on the command line, the Source field of the upload page), so that patient IDs of "
            f"different sources are never taken for one patient")


@dataclass
class IssuerResolver:
    """The issuer (as its keyed hash) of each imported file's patient, by the order of precedence above."""

    secret: str
    manifest_issuers: dict[str, str] = field(default_factory=dict)  # patient key hash -> issuer hash
    source_issuer: str = ""
    default_issuer: str | None = ""  # None: more than one source on the platform and none named

    @classmethod
    def for_import(cls, *, source_name: str = "", manifest=None) -> IssuerResolver:
        secret = settings.PSEUDONYM_KEY
        resolver = cls(secret=secret, source_issuer=uids.issuer_hash(secret, source_name or ""))
        if manifest is not None:
            for row in manifest.rows:
                institution = row.values.get("institution") or ""
                if institution.strip():
                    resolver.manifest_issuers[uids.patient_key_hash(secret, row.patient_key)] = uids.issuer_hash(
                        secret, institution)
        sources = platform_sources()
        resolver.default_issuer = sources[0] if len(sources) == 1 else ("" if not sources else None)
        return resolver

    def issuer_for(self, key_hash: str, file_issuer: str = "") -> str | None:
        """The issuer hash of a patient, or None when the import cannot tell (see NO_ISSUER_REASON)."""
        if file_issuer:
            return file_issuer
        if key_hash in self.manifest_issuers:
            return self.manifest_issuers[key_hash]
        if self.source_issuer:
            return self.source_issuer
        return self.default_issuer

    def identity(self, key_hash: str, file_issuer: str = "") -> tuple[str, str] | None:
        """(identity hash, issuer hash) of a patient, or None when its issuer cannot be told."""
        issuer = self.issuer_for(key_hash, file_issuer)
        if issuer is None:
            return None
        return uids.patient_identity_hash(self.secret, key_hash, issuer), issuer


@dataclass
class Placement:
    case: Case
    outcome: str  # "created", "added", "held"
    target: Case | None = None  # for "held": the existing case it may belong to
    reason: str = ""


@dataclass
class CaseEvent:
    """What one import did to one case, for its summary."""

    case: str
    outcome: str  # created, added, held, unchanged
    series: int = 0
    studies: set = field(default_factory=set)
    target: str = ""
    reason: str = ""
    manifest_note: str = ""

    def text(self) -> str:
        n = f"{self.series} series" if self.series else ""
        if self.outcome == "created":
            return f"new case {self.case} ({n})"
        if self.outcome == "added":
            return f"study added to existing case {self.case} ({n})"
        if self.outcome == "held":
            text = (f"study held for review as {self.case} ({n}), apart from existing case {self.target}: "
                    f"{self.reason}; nothing of it reaches {self.target} (nor training, cohorts or readers) "
                    f"until a coordinator resolves it as the same or a new patient")
            return text + (f"; {self.manifest_note}" if self.manifest_note else "")
        return f"nothing added to {self.case}: its {self.series} series were already imported"

    def as_dict(self) -> dict:
        data = {"case": self.case, "outcome": self.outcome, "series": self.series,
                "studies": len(self.studies), "text": self.text()}
        if self.target:
            data["existing_case"] = self.target
        if self.reason:
            data["reason"] = self.reason
        return data


def _split_key(identity: str, pseudonym: str) -> str:
    """The unique source_key_hash of a held (or split-off) case: keyed, derived from the identity and the case's
    own random pseudonym (the identity itself is the existing case's, and in ``identity_hash``)."""
    message = b"sarcoma-deid/held-case\x00" + identity.encode("ascii") + b"\x00" + pseudonym.encode("ascii")
    return hmac.new(settings.PSEUDONYM_KEY.encode("utf-8"), message, hashlib.sha256).hexdigest()


class CasePlacer:
    """Decides, once per (patient identity, study), which case the study's series go to; records the events."""

    def __init__(self, *, batch: ImportBatch, manifest=None):
        self.batch = batch
        self.events: dict[int, CaseEvent] = {}
        # patient key hash -> case pk (for the manifest and boxes); None when one patient ID went to more than one
        # case in this import (two issuers, or one study held apart): its manifest and box rows are ambiguous
        self.case_by_key: dict[str, int | None] = {}
        self._decided: dict[tuple[str, str], Placement] = {}
        self._manifest_class: dict[str, str] = {}
        if manifest is not None:
            for row in manifest.rows:
                if row.values.get("truth"):
                    self._manifest_class[uids.patient_key_hash(settings.PSEUDONYM_KEY, row.patient_key)] = (
                        row.values["truth"])

    # --- events --------------------------------------------------------------------------------------

    def note(self, case: Case, outcome: str, *, study: str = "", series: int = 0, target: Case | None = None,
             reason: str = "") -> None:
        event = self.events.get(case.pk)
        if event is None:
            event = self.events[case.pk] = CaseEvent(case=case.pseudonym, outcome=outcome,
                                                     target=target.pseudonym if target else "", reason=reason)
        event.series += series
        if study:
            event.studies.add(study)

    def note_existing(self, case: Case, *, study: str = "") -> None:
        """A series stored by an earlier run of this job (a resumed import)."""
        if case.review_reason:
            target = case.review_of
            self.note(case, "held", study=study, series=1, target=target, reason=case.review_reason)
        else:
            self.note(case, "created" if case.import_batch_id == self.batch.pk else "added", study=study, series=1)

    def report(self) -> list[dict]:
        order = {"held": 0, "added": 1, "created": 2, "unchanged": 3}
        return [e.as_dict() for e in sorted(self.events.values(), key=lambda e: (order[e.outcome], e.case))]

    def held_manifest_keys(self) -> set[str]:
        return {k for k, pk in self.case_by_key.items()
                if pk is not None and self.events.get(pk) and self.events[pk].outcome == "held"}

    # --- decisions -----------------------------------------------------------------------------------

    def place(self, outcome) -> Placement:
        """The case for the series of one file's (patient, study); decided once per pair."""
        key = (outcome.identity, outcome.study_uid)
        placement = self._decided.get(key)
        if placement is None:
            placement = self._decided[key] = self._decide(outcome)
            self.key_to_case(outcome.key_hash, placement.case.pk)
        return placement

    def key_to_case(self, key_hash: str, case_pk: int) -> None:
        """Record that this import put files of the patient key into the case (None: more than one case)."""
        if self.case_by_key.setdefault(key_hash, case_pk) != case_pk:
            self.case_by_key[key_hash] = None

    def _candidates(self, identity: str) -> list[Case]:
        """The cases of a patient identity: its own, and one another case was merged into (``CaseAlias``)."""
        return list(Case.objects.filter(Q(source_key_hash=identity) | Q(identity_hash=identity)
                                        | Q(aliases__identity_hash=identity)).distinct().order_by("pk"))

    def _conflicts(self, case: Case, outcome) -> list[str]:
        reasons = []
        if case.sex_hash and outcome.sex_hash and case.sex_hash != outcome.sex_hash:
            reasons.append("the files give another sex")
        if case.birth_date_hash and outcome.birth_date_hash and case.birth_date_hash != outcome.birth_date_hash:
            reasons.append("the files give another birth date")
        manifest_class = self._manifest_class.get(outcome.key_hash, "")
        if manifest_class and case.truth and manifest_class != case.truth:
            reasons.append(f"the manifest gives class {manifest_class}, the case has {case.truth}")
        return reasons

    def _decide(self, outcome) -> Placement:
        candidates = self._candidates(outcome.identity)
        mine = [c for c in candidates if c.import_batch_id == self.batch.pk]
        if mine:  # a case this import made (held or not): the patient's other studies in it join it
            case = mine[0]
            return Placement(case, "held" if case.review_reason else "created", target=case.review_of,
                             reason=case.review_reason)
        existing = [c for c in candidates if not c.review_reason]
        if not existing and outcome.resolved_issuer:
            legacy = Case.objects.usable().filter(source_key_hash=outcome.key_hash, issuer_hash="").first()
            if legacy is not None:  # imported with no source named: it may be this patient, or not
                when = ("before issuers of patient IDs were recorded" if not legacy.identity_hash
                        else "with no source named")
                reason = (f"the existing case was imported {when} (same patient ID, source unknown); if the cases "
                          f"imported without a source came from this one, say so on the next import "
                          f"(--unnamed-are-this-source) and resolve this study as the same patient")
                held = self._create(outcome, review_of=legacy, reason=reason)
                return Placement(held, "held", target=legacy, reason=reason)
        if not existing:
            case = self._create(outcome)
            return Placement(case, "created")
        freezes = frozen.frozen_by([c.pk for c in existing])
        reasons = {c.pk: self._conflicts(c, outcome) + ([f"the case is frozen in {', '.join(freezes[c.pk])}"]
                                                         if c.pk in freezes else []) for c in existing}
        fits = [c for c in existing if not reasons[c.pk]]
        if len(existing) > 1:  # "new patient" was decided before: several cases share this identity
            others = [c for c in existing if c not in fits]
            if len(fits) == 1 and all(self._demographics_differ(c, outcome) for c in others):
                return self._add(fits[0], outcome)
            target = fits[0] if fits else existing[0]
            reason = (f"{len(existing)} cases have this patient identity ({', '.join(c.pseudonym for c in existing)}, "
                      f"resolved earlier as different patients) and the files do not tell which one it is")
            held = self._create(outcome, review_of=target, reason=reason)
            return Placement(held, "held", target=target, reason=reason)
        if fits:
            return self._add(fits[0], outcome)
        target = existing[0]
        reason = "; ".join(reasons[target.pk])
        held = self._create(outcome, review_of=target, reason=reason)
        return Placement(held, "held", target=target, reason=reason)

    def _add(self, case: Case, outcome) -> Placement:
        self._complete_demographics(case, outcome)
        return Placement(case, "added")

    @staticmethod
    def _demographics_differ(case: Case, outcome) -> bool:
        """True when the files' sex or birth date differs from the case's: positive evidence of another person."""
        return any(getattr(case, n) and getattr(outcome, n) and getattr(case, n) != getattr(outcome, n)
                   for n in ("sex_hash", "birth_date_hash"))

    def _complete_demographics(self, case: Case, outcome) -> None:
        changes = {name: getattr(outcome, name) for name in ("sex_hash", "birth_date_hash", "person_hash")
                   if not getattr(case, name) and getattr(outcome, name)}
        if changes:
            Case.objects.filter(pk=case.pk).update(**changes)
            for name, value in changes.items():
                setattr(case, name, value)

    def _create(self, outcome, *, review_of: Case | None = None, reason: str = "") -> Case:
        from imaging.services import new_pseudonym

        values = dict(identity_hash=outcome.identity, issuer_hash=self._issuer_of(outcome),
                      sex_hash=outcome.sex_hash, birth_date_hash=outcome.birth_date_hash,
                      person_hash=outcome.person_hash,
                      is_synthetic=outcome.synthetic, import_batch=self.batch)
        pseudonym = new_pseudonym()
        if review_of is not None:
            return Case.objects.create(pseudonym=pseudonym, source_key_hash=_split_key(outcome.identity, pseudonym),
                                       review_of=review_of, review_reason=reason, **values)
        try:
            with transaction.atomic():
                return Case.objects.create(pseudonym=pseudonym, source_key_hash=outcome.identity, **values)
        except IntegrityError:  # another worker created it a moment ago
            return Case.objects.get(source_key_hash=outcome.identity)

    def _issuer_of(self, outcome) -> str:
        return outcome.resolved_issuer
