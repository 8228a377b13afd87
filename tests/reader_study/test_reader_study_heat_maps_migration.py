"""Migration 0007: studies made before heat-maps existed offer none (their readers' exam 2 does not change
under them); a study made after offers them, off until the reader turns them on (the default)."""

import pytest
from test_reader_study_migrations import _latest, _migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("reader_study", "0006_study_hanging_protocol")]
AFTER = [("reader_study", "0007_study_heat_maps")]


def test_existing_studies_hide_the_heat_maps_and_new_ones_offer_them():
    latest = _latest()
    try:
        old = _migrate(BEFORE)
        old.get_model("reader_study", "Study").objects.create(name="running before heat-maps (synthetic)")
        new = _migrate(AFTER)
        Study = new.get_model("reader_study", "Study")
        assert Study.objects.get(name="running before heat-maps (synthetic)").heat_maps == "hidden"
        assert Study.objects.create(name="made after (synthetic)").heat_maps == "off"
    finally:
        _migrate(latest)
