"""Map a DICOM series to one of the 15 MRI sequence codes (METHOD §2) with rules that are data.

Why a rule engine: every site names its protocols differently ("t2_tse_tra", "AX T2 FRFSE",
"T2W_TSE_TRA"), so the mapping must be editable by a coordinator as JSON, not hard-coded.

Flow at import (DESIGN "classify before de-identification"):

1. ``extract_attributes(ds)`` on every instance of the *source* dataset, before descriptions and
   private tags are removed;
2. ``merge_attributes(per_instance)`` per series (union of b-values, number of temporal positions);
3. ``classify_series(attrs, rules)`` -> ``(code, rule_id)``; ``code`` is one of
   ``core.constants.SEQUENCE_CODES`` or ``UNUSED_SEQUENCE``.

Rules are a list of dicts (see ``default_sequence_rules.json`` and docs/phantoms.md)::

    {"id": "t2-axial", "priority": 500, "code": "T2axi",
     "when": {"description": "\\bt2", "plane": "axial", "fat_suppressed": false}}

The rule with the highest priority whose conditions all hold wins (ties: the earlier rule in the
list). No match gives ``("unused", None)``. ``validate_rules`` returns a ``RuleSet`` or raises
``RuleValidationError`` listing every problem as ``(field, reason)``.

No Django import: this runs in the import task and in unit tests alike.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.constants import SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging.dicom_values import first_float

DEFAULT_RULES_PATH = Path(__file__).with_name("default_sequence_rules.json")

PLANES = ("axial", "sagittal", "coronal")
WEIGHTINGS = ("T1", "T2", "PD")
SCANNING_SEQUENCES = ("SE", "IR", "GR", "EP", "RM")

# Description keywords, matched on the normalised text (lower case, "_" -> " ").
_FAT_SUPPRESSION_RE = re.compile(
    r"\b(fs|fat ?sat|fatsat|fat ?sup\w*|spair|spir|stir|tirm|lava|thrive|ideal w\w*|chess)\b"
    r"|dixon.*\b(w|water)\b"
)
_CONTRAST_RE = re.compile(r"\+\s*(c|gd|gad|ce)\b|\b(c\+|post|gd|gad|gado\w*|ce|contrast|pc)\b")
_DYNAMIC_RE = re.compile(r"\b(dyn|dynamic|dce|perfusion|multiphase|multi phase|twist|disco)\b")
_ADC_RE = re.compile(r"\b(d?adc|apparent diffusion\w*|adc map)\b")
_DIFFUSION_RE = re.compile(r"\b(dwi|diff\w*|ep2d diff|dw|trace\w*|b\d{2,4}|resolve)\b")

# ScanOptions values that mean fat saturation (standard "FS"; vendor variants seen in the wild).
_FAT_SAT_OPTIONS = {"FS", "SFS", "FAT_SAT", "FSA_GEMS", "FSS_GEMS", "SP_FS"}
# ImageType values that mark derived diffusion images (Siemens, GE, Philips conventions).
_ADC_IMAGE_TYPES = {"ADC", "ADC_UNSPECIFIED", "ADC_MAP"}
_DIFFUSION_IMAGE_TYPES = {"DIFFUSION", "TRACEW", "TRACE", "ISOTROPIC", "DWI"}

# Vendor private b-value tags: (group, private creator, element offset).
_PRIVATE_B_VALUE_TAGS = (
    (0x0019, "SIEMENS MR HEADER", 0x0C),
    (0x0043, "GEMS_PARM_01", 0x39),
    (0x2001, "Philips Imaging DD 001", 0x03),
)


def normalise_description(text: str) -> str:
    """Lower-case a description and turn underscores into spaces, so ``\\bfs\\b`` finds 't2_tse_fs_tra'."""
    return re.sub(r"_+", " ", (text or "").lower()).strip()


@dataclass(frozen=True)
class SeriesAttributes:
    """What the rules look at, read from the source DICOM before de-identification.

    Raw fields are stored (``to_dict`` is JSON-able so the import can keep them for re-running the
    rules after the descriptions are gone); the flags the rules test are derived properties.
    Times in ms, b-values in s/mm².
    """

    series_description: str = ""
    protocol_name: str = ""
    image_type: tuple[str, ...] = ()
    scanning_sequence: tuple[str, ...] = ()
    sequence_variant: tuple[str, ...] = ()
    scan_options: tuple[str, ...] = ()
    image_orientation: tuple[float, ...] | None = None
    contrast_agent: str = ""
    b_values: tuple[float, ...] = ()
    temporal_positions: int = 1
    repetition_time: float | None = None
    echo_time: float | None = None
    modality: str = ""
    manufacturer: str = ""
    instances: int = 1

    # --- derived flags -------------------------------------------------------------------------
    @property
    def descriptions(self) -> tuple[str, str]:
        """(SeriesDescription, ProtocolName), normalised."""
        return normalise_description(self.series_description), normalise_description(self.protocol_name)

    def matches_description(self, pattern: re.Pattern[str]) -> bool:
        """True when ``pattern`` is found in the normalised SeriesDescription or ProtocolName."""
        return any(pattern.search(text) for text in self.descriptions if text)

    def _tagged_or_described(self, values: tuple[str, ...], tags: set[str], pattern: re.Pattern[str]) -> bool:
        """True when a value of a multi-valued attribute (ImageType, ScanOptions) is one of ``tags`` (any case),
        or the description says so (``pattern``)."""
        return any(v.upper() in tags for v in values) or self.matches_description(pattern)

    @property
    def plane(self) -> str | None:
        """axial / sagittal / coronal from the slice normal of ImageOrientationPatient (None if absent)."""
        return plane_from_orientation(self.image_orientation)

    @property
    def fat_suppressed(self) -> bool:
        return self._tagged_or_described(self.scan_options, _FAT_SAT_OPTIONS, _FAT_SUPPRESSION_RE)

    @property
    def contrast(self) -> bool:
        agent = self.contrast_agent.strip().upper()
        return (agent not in ("", "NONE", "NO")) or self.matches_description(_CONTRAST_RE)

    @property
    def is_adc(self) -> bool:
        return self._tagged_or_described(self.image_type, _ADC_IMAGE_TYPES, _ADC_RE)

    @property
    def diffusion(self) -> bool:
        """Diffusion-weighted or derived from diffusion (ADC is diffusion too; rules order them)."""
        return (
            self.max_b_value is not None and self.max_b_value > 0
            or self.is_adc
            or self._tagged_or_described(self.image_type, _DIFFUSION_IMAGE_TYPES, _DIFFUSION_RE)
        )

    @property
    def dynamic(self) -> bool:
        return self.temporal_positions > 1 or self.matches_description(_DYNAMIC_RE)

    @property
    def max_b_value(self) -> float | None:
        return max(self.b_values) if self.b_values else None

    @property
    def weighting(self) -> str | None:
        """Rough weighting from TR/TE (ms): a fallback when the description says nothing."""
        tr, te = self.repetition_time, self.echo_time
        if tr is None or te is None:
            return None
        if tr < 1000 and te < 30:
            return "T1"
        if tr >= 1500 and te >= 60:
            return "T2"
        if tr >= 1500 and te < 40:
            return "PD"
        return None

    def flags(self) -> dict[str, Any]:
        """The derived values the rules test, for display in the coordinator's mapping page."""
        return {
            "plane": self.plane, "fat_suppressed": self.fat_suppressed, "contrast": self.contrast,
            "diffusion": self.diffusion, "is_adc": self.is_adc, "dynamic": self.dynamic,
            "max_b_value": self.max_b_value, "weighting": self.weighting,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able raw fields (lists instead of tuples)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeriesAttributes:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"series attributes: unknown field(s) {sorted(unknown)}")
        kwargs = dict(data)
        for key in ("image_type", "scanning_sequence", "sequence_variant", "scan_options", "b_values"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key] or ())
        if kwargs.get("image_orientation") is not None:
            kwargs["image_orientation"] = tuple(float(v) for v in kwargs["image_orientation"])
        return cls(**kwargs)


def plane_from_orientation(orientation: Sequence[float] | None) -> str | None:
    """Dominant axis of the slice normal (row × column direction cosines, LPS patient axes).

    Normal along x (left-right) = sagittal, y (anterior-posterior) = coronal, z (feet-head) = axial.
    Oblique slices go to their nearest plane, as radiologists name them.
    """
    if orientation is None or len(orientation) != 6:
        return None
    r = [float(v) for v in orientation[:3]]
    c = [float(v) for v in orientation[3:]]
    normal = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    magnitudes = [abs(v) for v in normal]
    if max(magnitudes) == 0 or any(math.isnan(v) for v in magnitudes):
        return None
    return ("sagittal", "coronal", "axial")[magnitudes.index(max(magnitudes))]


# ------------------------------------------------------------------------------------------------
# Reading attributes from pydicom datasets
# ------------------------------------------------------------------------------------------------
def _multi(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split("\\") if v.strip())
    try:
        return tuple(str(v).strip() for v in value if str(v).strip())
    except TypeError:
        return (str(value).strip(),)


def _b_values(ds: Any) -> tuple[float, ...]:
    """DiffusionBValue (0018,9087), else the usual vendor private tags (guarded by their creator)."""
    found: list[float] = []
    standard = first_float(_get(ds, "DiffusionBValue"))
    if standard is not None:
        found.append(standard)
    for sequence_keyword in ("MRDiffusionSequence",):  # enhanced MR keeps it in a sequence
        for item in _get(ds, sequence_keyword) or []:
            value = first_float(_get(item, "DiffusionBValue"))
            if value is not None:
                found.append(value)
    if not found:
        for group, creator, offset in _PRIVATE_B_VALUE_TAGS:
            try:
                element = ds.private_block(group, creator)[offset]
            except (KeyError, ValueError):
                continue
            raw = element.value
            if isinstance(raw, bytes):
                continue  # undecoded private value: do not guess its binary layout
            value = first_float(raw)
            if value is not None:
                found.append(value % 1e9 if value >= 1e9 else value)  # GE adds 1e9 to the b-value
    return tuple(sorted({round(v, 3) for v in found if v >= 0}))


def _get(ds: Any, keyword: str) -> Any:
    """``ds.get`` that turns a value pydicom cannot convert into None (files in the wild are messy)."""
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001 - any conversion error means "unusable", never a crash
        return None


def extract_attributes(ds: Any) -> SeriesAttributes:
    """Attributes of one instance (pydicom Dataset), read BEFORE de-identification.

    Missing or malformed elements give empty values, never an exception: a file that gets this far
    has already been validated, and a series with odd headers should fall to "unused", not crash.
    """
    orientation = _get(ds, "ImageOrientationPatient")
    try:
        orientation_tuple = tuple(float(v) for v in orientation) if orientation is not None else None
        if orientation_tuple is not None and len(orientation_tuple) != 6:
            orientation_tuple = None
    except (TypeError, ValueError):
        orientation_tuple = None
    n_temporal = first_float(_get(ds, "NumberOfTemporalPositions"))
    return SeriesAttributes(
        series_description=str(_get(ds, "SeriesDescription") or ""),
        protocol_name=str(_get(ds, "ProtocolName") or ""),
        image_type=_multi(_get(ds, "ImageType")),
        scanning_sequence=_multi(_get(ds, "ScanningSequence")),
        sequence_variant=_multi(_get(ds, "SequenceVariant")),
        scan_options=_multi(_get(ds, "ScanOptions")),
        image_orientation=orientation_tuple,
        contrast_agent=str(_get(ds, "ContrastBolusAgent") or ""),
        b_values=_b_values(ds),
        temporal_positions=max(1, int(n_temporal)) if n_temporal else 1,
        repetition_time=first_float(_get(ds, "RepetitionTime")),
        echo_time=first_float(_get(ds, "EchoTime")),
        modality=str(_get(ds, "Modality") or ""),
        manufacturer=str(_get(ds, "Manufacturer") or ""),
        instances=1,
    )


def _temporal_identifier(ds: Any) -> int | None:
    value = first_float(_get(ds, "TemporalPositionIdentifier"))
    return int(value) if value is not None else None


def series_attributes(datasets: Iterable[Any]) -> SeriesAttributes:
    """Attributes of a whole series from its instances (pydicom Datasets), before de-identification.

    Counts distinct TemporalPositionIdentifier values, so a dynamic series is recognised even when
    NumberOfTemporalPositions is missing.
    """
    per_instance: list[SeriesAttributes] = []
    temporal_ids: set[int] = set()
    for ds in datasets:
        per_instance.append(extract_attributes(ds))
        identifier = _temporal_identifier(ds)
        if identifier is not None:
            temporal_ids.add(identifier)
    merged = merge_attributes(per_instance)
    if len(temporal_ids) > merged.temporal_positions:
        merged = SeriesAttributes.from_dict({**merged.to_dict(), "temporal_positions": len(temporal_ids)})
    return merged


def merge_attributes(per_instance: Sequence[SeriesAttributes]) -> SeriesAttributes:
    """One series' attributes from its instances: most common text values, union of b-values and
    image types, largest temporal-position count, most common orientation plane."""
    if not per_instance:
        raise ValueError("merge_attributes: a series needs at least one instance")

    def most_common(values: Iterable[Any]) -> Any:
        counted = Counter(v for v in values if v not in (None, "", ()))
        return counted.most_common(1)[0][0] if counted else None

    first = per_instance[0]
    planes = Counter(a.plane for a in per_instance if a.plane)
    main_plane = planes.most_common(1)[0][0] if planes else None
    orientation = next((a.image_orientation for a in per_instance if a.plane == main_plane), None)
    image_type: list[str] = []
    for attrs in per_instance:
        image_type.extend(t for t in attrs.image_type if t not in image_type)
    return SeriesAttributes(
        series_description=most_common(a.series_description for a in per_instance) or "",
        protocol_name=most_common(a.protocol_name for a in per_instance) or "",
        image_type=tuple(image_type),
        scanning_sequence=most_common(a.scanning_sequence for a in per_instance) or (),
        sequence_variant=most_common(a.sequence_variant for a in per_instance) or (),
        scan_options=most_common(a.scan_options for a in per_instance) or (),
        image_orientation=orientation,
        contrast_agent=most_common(a.contrast_agent for a in per_instance) or "",
        b_values=tuple(sorted({b for a in per_instance for b in a.b_values})),
        temporal_positions=max(a.temporal_positions for a in per_instance),
        repetition_time=most_common(a.repetition_time for a in per_instance),
        echo_time=most_common(a.echo_time for a in per_instance),
        modality=most_common(a.modality for a in per_instance) or first.modality,
        manufacturer=most_common(a.manufacturer for a in per_instance) or first.manufacturer,
        instances=sum(a.instances for a in per_instance),
    )


# ------------------------------------------------------------------------------------------------
# Rules
# ------------------------------------------------------------------------------------------------
class RuleValidationError(ValueError):
    """A rule set that cannot be used; ``errors`` holds every problem as (field, reason)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        lines = "\n".join(f"  {where}: {why}" for where, why in errors)
        super().__init__(f"sequence rules: {len(errors)} problem(s)\n{lines}")


_BOOL_CONDITIONS = ("fat_suppressed", "contrast", "diffusion", "is_adc", "dynamic")
CONDITIONS = (
    "description", "description_not", "plane", "weighting", "scanning_sequence", "b_value",
    *_BOOL_CONDITIONS,
)
_RULE_KEYS = {"id", "priority", "code", "when", "note"}


@dataclass(frozen=True)
class Rule:
    """One validated rule; ``conditions`` keeps the JSON form, compiled regexes sit beside it."""

    id: str
    priority: int
    code: str
    conditions: Mapping[str, Any]
    note: str = ""
    position: int = 0
    _regexes: Mapping[str, re.Pattern[str]] = field(default_factory=dict, repr=False, compare=False)

    def matches(self, attrs: SeriesAttributes) -> bool:
        return all(_condition_holds(name, value, attrs, self._regexes)
                   for name, value in self.conditions.items())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "priority": self.priority, "code": self.code,
                               "when": dict(self.conditions)}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class RuleSet:
    """Validated rules in evaluation order (priority high to low, then list order)."""

    rules: tuple[Rule, ...]
    version: int = 1

    def classify(self, attrs: SeriesAttributes) -> tuple[str, str | None]:
        for rule in self.rules:
            if rule.matches(attrs):
                return rule.code, rule.id
        return UNUSED_SEQUENCE, None

    def to_json_data(self) -> dict[str, Any]:
        ordered = sorted(self.rules, key=lambda r: r.position)
        return {"version": self.version, "rules": [r.to_dict() for r in ordered]}


def _condition_holds(name: str, expected: Any, attrs: SeriesAttributes,
                     regexes: Mapping[str, re.Pattern[str]]) -> bool:
    if name == "description":
        return attrs.matches_description(regexes[name])
    if name == "description_not":
        return not attrs.matches_description(regexes[name])
    if name == "plane":
        return attrs.plane in ((expected,) if isinstance(expected, str) else tuple(expected))
    if name == "weighting":
        return attrs.weighting in ((expected,) if isinstance(expected, str) else tuple(expected))
    if name == "scanning_sequence":
        wanted = {expected} if isinstance(expected, str) else set(expected)
        return bool(wanted & {s.upper() for s in attrs.scanning_sequence})
    if name == "b_value":
        top = attrs.max_b_value
        low, high = expected
        return top is not None and (low is None or top >= low) and (high is None or top <= high)
    return bool(getattr(attrs, name)) == bool(expected)


def _check_choice(value: Any, choices: Sequence[str], where: str, errors: list[tuple[str, str]]) -> None:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        errors.append((where, f"must be one of {', '.join(choices)} or a non-empty list of them"))
        return
    for v in values:
        if v not in choices:
            errors.append((where, f"{v!r} is not one of {', '.join(choices)}"))


def _validate_conditions(when: Any, where: str, errors: list[tuple[str, str]]) -> dict[str, re.Pattern[str]]:
    regexes: dict[str, re.Pattern[str]] = {}
    if not isinstance(when, dict):
        errors.append((where, "must be an object of conditions, e.g. {\"plane\": \"axial\"}"))
        return regexes
    for name, value in when.items():
        here = f"{where}.{name}"
        if name not in CONDITIONS:
            errors.append((here, f"unknown condition; known: {', '.join(CONDITIONS)}"))
        elif name in ("description", "description_not"):
            if not isinstance(value, str) or not value:
                errors.append((here, "must be a non-empty regular expression string"))
                continue
            try:
                regexes[name] = re.compile(value, re.IGNORECASE)
            except re.error as exc:
                errors.append((here, f"invalid regular expression: {exc}"))
        elif name == "plane":
            _check_choice(value, PLANES, here, errors)
        elif name == "weighting":
            _check_choice(value, WEIGHTINGS, here, errors)
        elif name == "scanning_sequence":
            _check_choice(value, SCANNING_SEQUENCES, here, errors)
        elif name == "b_value":
            ok = isinstance(value, list) and len(value) == 2 and all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value)
            if not ok:
                errors.append((here, "must be [min, max] in s/mm² (numbers or null for open ends)"))
            elif value[0] is not None and value[1] is not None and value[0] > value[1]:
                errors.append((here, f"min {value[0]} is larger than max {value[1]}"))
        elif not isinstance(value, bool):
            errors.append((here, f"must be true or false, not {value!r}"))
    return regexes


def validate_rules(data: Any) -> RuleSet:
    """Check a rule set (``{"version": 1, "rules": [...]}`` or a bare list) and compile it.

    Raises ``RuleValidationError`` naming every bad field, e.g.
    ``rules[3].when.plane: 'axil' is not one of axial, sagittal, coronal``.
    """
    errors: list[tuple[str, str]] = []
    version = 1
    if isinstance(data, dict):
        extra = set(data) - {"version", "rules", "note"}
        if extra:
            errors.append(("(top level)", f"unknown key(s) {sorted(extra)}; expected 'version' and 'rules'"))
        version = data.get("version", 1)
        if version != 1:
            errors.append(("version", f"unsupported version {version!r}; this platform reads version 1"))
        items = data.get("rules")
    else:
        items = data
    if not isinstance(items, list) or not items:
        raise RuleValidationError(errors + [("rules", "must be a non-empty list of rules")])
    valid_codes = (*SEQUENCE_CODES, UNUSED_SEQUENCE)
    seen: dict[str, int] = {}
    rules: list[Rule] = []
    for index, item in enumerate(items):
        where = f"rules[{index}]"
        if not isinstance(item, dict):
            errors.append((where, "must be an object with id, priority, code and when"))
            continue
        rule_id = item.get("id")
        if isinstance(rule_id, str) and rule_id.strip():
            where = f"rules[{index}] ({rule_id})"
        for key in sorted(set(item) - _RULE_KEYS):
            errors.append((f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(_RULE_KEYS))}"))
        if not isinstance(rule_id, str) or not rule_id.strip():
            errors.append((f"{where}.id", "must be a non-empty string"))
        elif rule_id in seen:
            errors.append((f"{where}.id", f"duplicate id, already used by rules[{seen[rule_id]}]"))
        else:
            seen[rule_id] = index
        priority = item.get("priority")
        if not isinstance(priority, int) or isinstance(priority, bool):
            errors.append((f"{where}.priority", f"must be an integer, not {priority!r}"))
        code = item.get("code")
        if code not in valid_codes:
            errors.append((f"{where}.code", f"{code!r} is not a sequence code; use one of "
                                            f"{', '.join(valid_codes)}"))
        when = item.get("when", {})
        regexes = _validate_conditions(when, f"{where}.when", errors)
        note = item.get("note", "")
        if not isinstance(note, str):
            errors.append((f"{where}.note", "must be a string"))
        if not errors:
            rules.append(Rule(id=rule_id, priority=priority, code=code, conditions=dict(when),
                              note=note, position=index, _regexes=regexes))
    if errors:
        raise RuleValidationError(errors)
    rules.sort(key=lambda r: (-r.priority, r.position))
    return RuleSet(rules=tuple(rules), version=version)


def rules_from_json(text: str, *, source: str = "rules") -> RuleSet:
    """Parse and validate rules from JSON text; a syntax error names the line and column."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleValidationError([(source, f"not valid JSON: {exc.msg} at line {exc.lineno}, "
                                            f"column {exc.colno}")]) from None
    return validate_rules(data)


@functools.lru_cache(maxsize=1)
def load_default_rules() -> RuleSet:
    """The shipped rules (``imaging/default_sequence_rules.json``), read once per process."""
    return rules_from_json(DEFAULT_RULES_PATH.read_text(encoding="utf-8"), source=DEFAULT_RULES_PATH.name)


def classify_series(attrs: SeriesAttributes, rules: RuleSet | Sequence[Mapping[str, Any]] | Mapping[str, Any]
                    | None = None) -> tuple[str, str | None]:
    """The sequence code for a series and the id of the rule that decided it.

    ``rules``: a ``RuleSet``, raw rule data (validated here), or None for the shipped defaults.
    Returns ``(UNUSED_SEQUENCE, None)`` when no rule matches.
    """
    if rules is None:
        rule_set = load_default_rules()
    elif isinstance(rules, RuleSet):
        rule_set = rules
    else:
        rule_set = validate_rules(rules)
    return rule_set.classify(attrs)
