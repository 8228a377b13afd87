"""Our de-identification table against the standard's PS3.15 Table E.1-1 (machine-readable copy in
../shared/data/dicom; the product does not ship it, so these tests skip when it is absent)."""

import json
import re
from pathlib import Path

import pytest

from imaging.deid_table import (
    BASIC_PROFILE,
    RESOLVED_ACTION,
    resolved_action,
    table_code,
)

STANDARD_JSON = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom"
                 / "ps3.15_annex_e_confidentiality_profile.json")

# For each code of the standard, the single actions that remove at least as much as it asks.
# X removes the attribute; Z leaves it empty; D leaves a dummy; U* keeps a sequence but cleans its
# items and replaces their UIDs, which is what the "U*" branch of X/Z/U* asks for.
COMPATIBLE = {
    "X": {"X"},
    "Z": {"Z", "X"},
    "D": {"D", "Z", "X"},
    "Z/D": {"Z", "D", "X"},
    "X/Z": {"X", "Z"},
    "X/D": {"X", "D"},
    "X/Z/D": {"X", "Z", "D"},
    "U": {"U"},
    "X/Z/U*": {"X", "Z", "U*"},
}

# Group rows of the standard and a tag each that falls under them.
GROUP_ROWS = {
    "50xxxxxx": 0x50003000,
    "60xx3000": 0x60003000,
    "60xx4000": 0x601E4000,
    "ggggeeee-where-gggg-is-odd": 0x00291010,
}


@pytest.fixture(scope="module")
def standard_rows() -> list[dict]:
    if not STANDARD_JSON.exists():
        pytest.skip(f"standard's Table E.1-1 not available at {STANDARD_JSON}")
    return json.loads(STANDARD_JSON.read_text())


def test_every_single_tag_row_of_the_standard_is_in_our_table_with_the_same_code(standard_rows):
    single = [row for row in standard_rows if re.fullmatch(r"[0-9a-f]{8}", row["id"])]
    missing = [row["tag"] for row in single if int(row["id"], 16) not in BASIC_PROFILE]
    different = [(row["tag"], row["basicProfile"], BASIC_PROFILE[int(row["id"], 16)][0])
                 for row in single if int(row["id"], 16) in BASIC_PROFILE
                 and BASIC_PROFILE[int(row["id"], 16)][0] != row["basicProfile"]]
    assert missing == []
    # No code differs today. Should one ever be edited to something stricter, list it here with why.
    assert different == []


def test_every_action_we_take_is_as_strict_as_the_standard_asks(standard_rows):
    weaker = []
    for row in standard_rows:
        tag = GROUP_ROWS.get(row["id"]) or int(row["id"], 16)
        if resolved_action(tag) not in COMPATIBLE[row["basicProfile"]]:
            weaker.append((row["tag"], row["basicProfile"], resolved_action(tag)))
    assert weaker == []


def test_group_rows_of_the_standard_are_group_rules_here(standard_rows):
    ids = {row["id"] for row in standard_rows}
    assert set(GROUP_ROWS) <= ids
    for tag in GROUP_ROWS.values():
        assert table_code(tag) == "X"
    # stricter: the whole 50xx / 60xx groups, not just the listed elements
    assert table_code(0x60000010) == table_code(0x50FE0005) == "X"


def test_rows_we_have_beyond_the_standard_are_none(standard_rows):
    standard_tags = {int(row["id"], 16) for row in standard_rows if re.fullmatch(r"[0-9a-f]{8}", row["id"])}
    assert sorted(set(BASIC_PROFILE) - standard_tags) == []


def test_our_table_uses_only_known_codes_and_has_names():
    assert {code for code, _ in BASIC_PROFILE.values()} <= set(RESOLVED_ACTION)
    assert all(name and "\n" not in name for _, name in BASIC_PROFILE.values())


@pytest.mark.parametrize(("tag", "expected"), [
    (0x00100010, "Z"),  # Patient's Name: becomes the pseudonym
    (0x00100020, "Z"),  # Patient ID (Z/D)
    (0x0008103E, "X"),  # Series Description: removed, so classify first
    (0x00181030, "X"),  # Protocol Name (X/D)
    (0x00080018, "U"),  # SOP Instance UID
    (0x00081140, "U*"),  # Referenced Image Sequence (X/Z/U*): kept, items cleaned
    (0x00080020, "Z"),  # Study Date
    (0x00080080, "X"),  # Institution Name (X/Z/D)
    (0x00180010, "Z"),  # Contrast/Bolus Agent (Z/D)
    (0x00189074, "D"),  # Frame Acquisition DateTime: a dummy
    (0x00200052, "U"),  # Frame of Reference UID
    (0x00280030, None),  # Pixel Spacing: not listed, kept
])
def test_resolved_actions_of_attributes_that_matter_here(tag, expected):
    assert resolved_action(tag) == expected
