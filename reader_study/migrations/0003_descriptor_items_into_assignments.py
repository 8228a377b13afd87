"""One reading workflow, step 2 of 3: the descriptor task's worklist moves into Assignment (exam 3).

Each DescriptorItem becomes an Assignment of exam 3 (the number its worklist seed and its "D-" display codes
already had) with the same study, reader, case, display code, position and active time, and its
DescriptorScore points at that assignment (0004 then drops the score's copies of study, reader and case). The
study log's "descriptor_scored" events keep their old item id and gain the assignment's. Reversible: going
back recreates the items from the exam-3 assignments and removes those.
"""

from django.db import migrations

DESCRIPTORS = 3


def _models(apps):
    return [apps.get_model("reader_study", name)
            for name in ("Assignment", "DescriptorItem", "DescriptorScore", "StudyEvent")]


def items_to_assignments(apps, schema_editor):
    Assignment, DescriptorItem, DescriptorScore, StudyEvent = _models(apps)
    moved = {}
    for item in DescriptorItem.objects.order_by("pk").iterator():
        assignment = Assignment.objects.create(
            study_id=item.study_id, reader_id=item.reader_id, exam=DESCRIPTORS, case_id=item.case_id,
            display_code=item.display_code, position=item.position, active_seconds=item.active_seconds)
        moved[item.pk] = assignment.pk
    for score in DescriptorScore.objects.order_by("pk").iterator():
        DescriptorScore.objects.filter(pk=score.pk).update(assignment_id=moved[score.item_id])
    for event in StudyEvent.objects.filter(action="descriptor_scored").iterator():
        item = event.detail.get("item")
        if item in moved:
            event.detail["assignment"] = moved[item]
            event.save(update_fields=["detail"])


def assignments_to_items(apps, schema_editor):
    Assignment, DescriptorItem, DescriptorScore, StudyEvent = _models(apps)
    moved = {}
    for assignment in Assignment.objects.filter(exam=DESCRIPTORS).order_by("pk").iterator():
        item = DescriptorItem.objects.create(
            study_id=assignment.study_id, reader_id=assignment.reader_id, case_id=assignment.case_id,
            display_code=assignment.display_code, position=assignment.position,
            active_seconds=assignment.active_seconds)
        moved[assignment.pk] = (item.pk, assignment)
    for score in DescriptorScore.objects.order_by("pk").iterator():
        item_pk, assignment = moved[score.assignment_id]
        DescriptorScore.objects.filter(pk=score.pk).update(
            item_id=item_pk, study_id=assignment.study_id, reader_id=assignment.reader_id,
            case_id=assignment.case_id, assignment_id=None)
    for event in StudyEvent.objects.filter(action="descriptor_scored").iterator():
        assignment = event.detail.pop("assignment", None)
        if assignment in moved:
            event.detail.setdefault("item", moved[assignment][0])
            event.save(update_fields=["detail"])
    Assignment.objects.filter(exam=DESCRIPTORS).delete()


class Migration(migrations.Migration):
    """Data only: on PostgreSQL, changing a table's columns in the transaction that wrote rows under deferred
    foreign keys fails, so the schema steps are migrations of their own."""

    dependencies = [("reader_study", "0002_assignment_takes_the_descriptor_task")]

    operations = [migrations.RunPython(items_to_assignments, assignments_to_items)]
