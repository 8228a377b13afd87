"""Sequence mapping rules: common scanner names, attribute extraction, priorities, validation."""

import json

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from core.constants import SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging.sequences import (
    DEFAULT_RULES_PATH,
    RuleValidationError,
    SeriesAttributes,
    classify_series,
    extract_attributes,
    load_default_rules,
    merge_attributes,
    plane_from_orientation,
    rules_from_json,
    series_attributes,
    validate_rules,
)

AX, SAG, COR = (1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), (1, 0, 0, 0, 0, -1)


def attrs(description: str, orientation=AX, **kwargs) -> SeriesAttributes:
    return SeriesAttributes(series_description=description, image_orientation=orientation, **kwargs)


@pytest.mark.parametrize("description, orientation, extra, expected", [
    # Siemens
    ("t2_tse_tra", AX, {}, "T2axi"),
    ("t2_tse_sag", SAG, {}, "T2sag"),
    ("t2_tse_cor", COR, {}, "T2cor"),
    ("t2_tse_fs_tra", AX, {}, "fsT2axi"),
    ("t2_tirm_tra", AX, {}, "fsT2axi"),
    ("t1_tse_tra", AX, {}, "T1axi"),
    ("t1_tse_sag", SAG, {}, "T1sag"),
    ("t1_vibe_fs_tra", AX, {}, "fsT1axi"),
    ("t1_vibe_fs_tra_post", AX, {}, "fsT1CEaxi"),
    ("t1_vibe_fs_tra_dyn", AX, {}, "dynamicaxi"),
    ("t1_vibe_fs_sag_dyn", SAG, {}, "dynamicsag"),
    ("ep2d_diff_b50_800_tra_TRACEW", AX, {"b_values": (50.0, 800.0)}, "DWI"),
    ("ep2d_diff ADC", AX, {}, "ADC"),
    ("ep2d_diff_b50_800_tra_ADC", AX, {"image_type": ("DERIVED", "PRIMARY", "DIFFUSION", "ADC")}, "ADC"),
    ("localizer", AX, {}, UNUSED_SEQUENCE),
    ("t1_vibe_fs_tra_dyn_SUB", AX, {}, UNUSED_SEQUENCE),
    ("t1_vibe_dixon_tra_opp", AX, {}, UNUSED_SEQUENCE),
    ("t1_vibe_dixon_tra_W", AX, {}, "fsT1axi"),
    # GE
    ("AX T2 FRFSE", AX, {}, "T2axi"),
    ("SAG T2 FRFSE", SAG, {}, "T2sag"),
    ("AX T2 FRFSE FS", AX, {}, "fsT2axi"),
    ("AX T1 FSE", AX, {}, "T1axi"),
    ("AX LAVA +C", AX, {}, "fsT1CEaxi"),
    ("COR T1 FS +C", COR, {}, "fsT1CEcor"),
    ("T1 FS +C COR", COR, {}, "fsT1CEcor"),
    ("AX DWI b1000", AX, {}, "DWI"),
    ("Apparent Diffusion Coefficient (mm2/s)", AX, {}, "ADC"),
    ("3-Plane Loc", AX, {}, UNUSED_SEQUENCE),
    ("Ax T2* GRE", AX, {}, UNUSED_SEQUENCE),
    # Philips
    ("T2W_TSE_TRA", AX, {}, "T2axi"),
    ("T2W_SPAIR_TRA", AX, {}, "fsT2axi"),
    ("T1W_TSE_SAG", SAG, {}, "T1sag"),
    ("T1W_THRIVE_SAG_GD", SAG, {}, "fsT1CEsag"),
    ("DYN_THRIVE_TRA", AX, {}, "dynamicaxi"),
    ("dADC_b800", AX, {}, "ADC"),
    ("DWI_b0_800_TRA", AX, {"b_values": (0.0, 800.0)}, "DWI"),
    ("eADC", AX, {}, UNUSED_SEQUENCE),
    ("Survey", AX, {}, UNUSED_SEQUENCE),
    # Plain names from the brief
    ("T2 TSE AX", AX, {}, "T2axi"),
    ("T1 FS SAG", SAG, {}, "fsT1sag"),
])
def test_common_scanner_names_map_to_the_expected_code(description, orientation, extra, expected):
    assert classify_series(attrs(description, orientation, **extra), load_default_rules())[0] == expected


def test_plane_comes_from_orientation_not_the_name():
    # Named "tra" but acquired sagittally: the orientation decides.
    assert classify_series(attrs("t2_tse_tra", SAG))[0] == "T2sag"
    assert plane_from_orientation((1, 0, 0, 0, 0.94, -0.34)) == "axial"  # 20° oblique axial
    assert plane_from_orientation((0, 1, 0, 0, 0, -1)) == "sagittal"
    assert plane_from_orientation((1, 0, 0, 0, 0, -1)) == "coronal"
    assert plane_from_orientation(None) is None


def test_contrast_agent_and_fat_saturation_flags_come_from_headers_too():
    plain = attrs("T1 VIBE TRA")
    assert classify_series(plain)[0] == "T1axi"
    assert classify_series(attrs("T1 VIBE TRA", scan_options=("FS",)))[0] == "fsT1axi"
    with_agent = attrs("T1 VIBE TRA", scan_options=("FS",), contrast_agent="Gadovist")
    assert classify_series(with_agent)[0] == "fsT1CEaxi"
    assert classify_series(attrs("T1 VIBE TRA", scan_options=("FS",), contrast_agent="Gd",
                                 temporal_positions=5))[0] == "dynamicaxi"
    assert not attrs("AX T2 FRFSE").fat_suppressed  # 'fs' inside 'FRFSE' is not fat saturation


def test_timing_fallback_when_the_name_says_nothing():
    t2 = attrs("PELVIS 3", repetition_time=4200.0, echo_time=100.0)
    t1 = attrs("PELVIS 4", SAG, repetition_time=550.0, echo_time=12.0)
    assert classify_series(t2)[0] == "T2axi"
    assert classify_series(t1)[0] == "T1sag"
    assert classify_series(attrs("PELVIS 5"))[0] == UNUSED_SEQUENCE


def test_dwi_with_only_low_b_values_is_unused():
    assert classify_series(attrs("ep2d_diff_b0", b_values=(0.0,)))[0] == UNUSED_SEQUENCE
    assert classify_series(attrs("ep2d_diff_b0", b_values=(0.0, 1000.0)))[0] == "DWI"


def _mr(description="t1_vibe_fs_tra_dyn", **kwargs) -> Dataset:
    ds = Dataset()
    ds.Modality = "MR"
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = ["SP", "OSP"]
    ds.ScanOptions = "FS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.RepetitionTime = 4.1
    ds.EchoTime = 1.8
    for key, value in kwargs.items():
        setattr(ds, key, value)
    return ds


def test_extract_attributes_reads_the_headers():
    ds = _mr(ContrastBolusAgent="GADOTERATE", NumberOfTemporalPositions=4, TemporalPositionIdentifier=2,
             DiffusionBValue=0)
    a = extract_attributes(ds)
    assert a.plane == "axial" and a.fat_suppressed and a.contrast and a.dynamic
    assert a.scan_options == ("FS",) and a.sequence_variant == ("SP", "OSP")
    assert a.temporal_positions == 4 and a.repetition_time == pytest.approx(4.1)
    assert a.weighting == "T1"


def test_series_attributes_merge_b_values_and_count_temporal_positions():
    dwi = [_mr("ep2d_diff_tra", DiffusionBValue=b) for b in (50, 400, 800)]
    merged = series_attributes(dwi)
    assert merged.b_values == (50.0, 400.0, 800.0) and merged.instances == 3 and merged.max_b_value == 800
    # Dynamic recognised from TemporalPositionIdentifier alone (no NumberOfTemporalPositions, no 'dyn').
    phases = [_mr("t1_vibe_fs_tra", TemporalPositionIdentifier=t, ContrastBolusAgent="Gd") for t in (1, 2, 3)]
    assert series_attributes(phases).temporal_positions == 3
    assert classify_series(series_attributes(phases))[0] == "dynamicaxi"
    with pytest.raises(ValueError, match="at least one instance"):
        merge_attributes([])


def test_private_siemens_b_value_is_read_only_under_its_creator():
    ds = _mr("ep2d_diff_tra")
    ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0C, "IS", 1000)
    assert extract_attributes(ds).b_values == (1000.0,)
    other = _mr("ep2d_diff_tra")
    other.private_block(0x0019, "SOMEONE ELSE", create=True).add_new(0x0C, "IS", 1000)
    assert extract_attributes(other).b_values == ()


def test_missing_and_malformed_headers_give_unused_not_an_exception():
    ds = Dataset()  # as pydicom reads a damaged file: raw values, converted on access
    ds[0x00180080] = RawDataElement(Tag(0x00180080), "DS", 4, b"abc ", 0, False, True)  # RepetitionTime
    ds[0x00200037] = RawDataElement(Tag(0x00200037), "DS", 6, b"1\\0\\0 ", 0, False, True)  # 3 of 6 cosines
    a = extract_attributes(ds)
    assert a.image_orientation is None and a.repetition_time is None
    assert classify_series(a) == (UNUSED_SEQUENCE, None)


def test_attributes_round_trip_through_json():
    a = attrs("t1_vibe_fs_tra_dyn", b_values=(0.0, 800.0), image_type=("ORIGINAL",), temporal_positions=3)
    restored = SeriesAttributes.from_dict(json.loads(json.dumps(a.to_dict())))
    assert restored == a and restored.flags() == a.flags()
    with pytest.raises(ValueError, match="unknown field"):
        SeriesAttributes.from_dict({"colour": "red"})


# --- rule sets ------------------------------------------------------------------------------------
def test_default_rules_are_valid_and_reach_every_code():
    data = json.loads(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    rule_set = validate_rules(data)
    targets = {rule.code for rule in rule_set.rules}
    assert set(SEQUENCE_CODES) <= targets and UNUSED_SEQUENCE in targets
    assert rule_set.to_json_data()["rules"] == data["rules"]


def test_highest_priority_wins_then_list_order():
    rules = [
        {"id": "low", "priority": 1, "code": "T2axi", "when": {"plane": "axial"}},
        {"id": "high", "priority": 5, "code": "T1axi", "when": {"plane": "axial"}},
        {"id": "tie-second", "priority": 5, "code": "ADC", "when": {"plane": "axial"}},
    ]
    assert classify_series(attrs("x"), rules) == ("T1axi", "high")
    assert classify_series(attrs("x", SAG), rules) == (UNUSED_SEQUENCE, None)


def test_description_matches_series_description_or_protocol_name():
    rules = [{"id": "p", "priority": 1, "code": "T2cor", "when": {"description": r"\bmy protocol\b"}}]
    by_protocol = SeriesAttributes(series_description="x", protocol_name="MY_PROTOCOL")
    assert classify_series(by_protocol, rules)[0] == "T2cor"
    negated = [{"id": "n", "priority": 1, "code": "T2cor", "when": {"description_not": "protocol"}}]
    assert classify_series(by_protocol, negated)[0] == UNUSED_SEQUENCE


def _errors(data) -> list[tuple[str, str]]:
    with pytest.raises(RuleValidationError) as info:
        validate_rules(data)
    return info.value.errors


def test_validation_names_every_bad_field():
    errors = _errors({"version": 1, "rules": [
        {"id": "a", "priority": 1, "code": "T2axi", "when": {"plane": "axil"}},
        {"id": "a", "priority": "high", "code": "T9", "when": {"description": "(unclosed"}},
        {"id": "", "priority": 1, "code": "ADC", "when": {"colour": "red", "b_value": [900, 100]}},
        {"id": "d", "priority": 1, "code": "DWI", "when": {"dynamic": "yes"}, "extra": 1},
    ]})
    fields = {field for field, _ in errors}
    assert "rules[0] (a).when.plane" in fields
    assert "rules[1] (a).id" in fields and "rules[1] (a).priority" in fields
    assert "rules[1] (a).code" in fields and "rules[1] (a).when.description" in fields
    assert "rules[2].id" in fields and "rules[2].when.colour" in fields and "rules[2].when.b_value" in fields
    assert "rules[3] (d).when.dynamic" in fields and "rules[3] (d).extra" in fields
    reasons = dict(errors)
    assert "'axil' is not one of axial, sagittal, coronal" in reasons["rules[0] (a).when.plane"]
    assert "duplicate id" in reasons["rules[1] (a).id"]
    assert "invalid regular expression" in reasons["rules[1] (a).when.description"]
    assert "min 900 is larger than max 100" in reasons["rules[2].when.b_value"]


@pytest.mark.parametrize("data, field", [
    ([], "rules"), ({"rules": "x"}, "rules"), ({"version": 2, "rules": [
        {"id": "a", "priority": 1, "code": "ADC", "when": {}}]}, "version"),
    ([{"id": "a", "priority": 1, "code": "ADC", "when": ["plane"]}], "rules[0] (a).when"),
    (["not a rule"], "rules[0]"),
])
def test_validation_of_the_overall_shape(data, field):
    assert field in {f for f, _ in _errors(data)}


def test_json_syntax_errors_name_line_and_column():
    with pytest.raises(RuleValidationError, match=r"my_rules.json: not valid JSON: .* line 2, column"):
        rules_from_json('{"rules": [\n  {"id": "a",, }]}', source="my_rules.json")


def test_validation_error_message_lists_each_problem():
    with pytest.raises(RuleValidationError) as info:
        validate_rules([{"id": "a", "priority": 1, "code": "T2axi", "when": {"plane": "up"}}])
    assert "rules[0] (a).when.plane: 'up' is not one of" in str(info.value)
