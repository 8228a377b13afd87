"""The migration that folds the descriptor task's worklist into Assignment keeps every item and every score,
and going back restores them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from reader_study.models import DESCRIPTORS, Assignment, DescriptorScore, StudyEvent

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("reader_study", "0001_initial")]


def _migrate(targets):
    """Migrate the test database to ``targets``; the models as they were there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def _latest():
    return [key for key in MigrationExecutor(connection).loader.graph.leaf_nodes() if key[0] == "reader_study"]


@pytest.fixture
def old_schema():
    """The database at reader_study 0001 (DescriptorItem exists); put back to the latest schema after."""
    latest = _latest()
    yield _migrate(BEFORE)
    _migrate(latest)


def _old_world(apps):
    """A study with one reader: an exam-1 assignment, two descriptor items (one scored) and its log event."""
    user = apps.get_model("auth", "User").objects.create(username="migrating-reader")
    Case = apps.get_model("imaging", "Case")
    cases = [Case.objects.create(pseudonym=f"PSN-MIG-{i}", source_key_hash=f"{i:064d}", truth="leiomyoma")
             for i in range(2)]
    study = apps.get_model("reader_study", "Study").objects.create(name="Migrating study", seed=7)
    apps.get_model("reader_study", "Assignment").objects.create(
        study=study, reader=user, exam=1, case=cases[0], display_code="A-123", position=0)
    Item = apps.get_model("reader_study", "DescriptorItem")
    items = [Item.objects.create(study=study, reader=user, case=case, display_code=f"D-45{i}", position=1 - i,
                                 active_seconds=10.5 + i) for i, case in enumerate(cases)]
    apps.get_model("reader_study", "DescriptorScore").objects.create(
        item=items[0], study=study, reader=user, case=cases[0], degeneration=True, irregular_margin=False)
    apps.get_model("reader_study", "StudyEvent").objects.create(
        study=study, action="descriptor_scored", detail={"item": items[0].pk, "after": {"degeneration": True}})
    return study.pk, user.pk, [c.pk for c in cases], [i.pk for i in items]


def test_descriptor_items_become_assignments_and_keep_their_scores_and_back(old_schema):
    study, user, cases, items = _old_world(old_schema)
    _migrate(_latest())
    moved = list(Assignment.objects.filter(study_id=study, reader_id=user, exam=DESCRIPTORS).order_by("position"))
    assert [(a.case_id, a.display_code, a.position, a.active_seconds) for a in moved] == [
        (cases[1], "D-451", 0, 11.5), (cases[0], "D-450", 1, 10.5)]
    score = DescriptorScore.objects.get()
    assert (score.assignment_id, score.degeneration, score.irregular_margin) == (moved[1].pk, True, False)
    assert Assignment.objects.filter(study_id=study, exam=1).count() == 1
    event = StudyEvent.objects.get(action="descriptor_scored")
    assert event.detail["assignment"] == moved[1].pk and event.detail["item"] == items[0]

    apps = _migrate(BEFORE)
    Item = apps.get_model("reader_study", "DescriptorItem")
    restored = list(Item.objects.filter(study_id=study).order_by("position"))
    assert [(i.case_id, i.display_code, i.position, i.active_seconds) for i in restored] == [
        (cases[1], "D-451", 0, 11.5), (cases[0], "D-450", 1, 10.5)]
    old_score = apps.get_model("reader_study", "DescriptorScore").objects.get()
    assert (old_score.item_id, old_score.study_id, old_score.reader_id, old_score.case_id) == (
        restored[1].pk, study, user, cases[0])
    assert not apps.get_model("reader_study", "Assignment").objects.filter(exam=DESCRIPTORS).exists()
