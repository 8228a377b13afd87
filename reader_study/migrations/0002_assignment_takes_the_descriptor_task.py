"""One reading workflow, step 1 of 3: Assignment takes the descriptor task (exam 3); DescriptorScore gains
a link to its assignment. The score's old links become nullable for the moment (see 0004)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("reader_study", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="assignment",
            name="exam",
            field=models.PositiveSmallIntegerField(
                choices=[(1, "Exam 1 (unaided)"), (2, "Exam 2 (AI-aided)"), (3, "Leiomyoma descriptors")],
                help_text="the task: exam 1, exam 2 or 3, the descriptor task"),
        ),
        migrations.AlterField(
            model_name="assignment",
            name="position",
            field=models.PositiveIntegerField(help_text="0-based place in the reader's order for this task"),
        ),
        migrations.AddField(
            model_name="descriptorscore",
            name="assignment",
            field=models.OneToOneField(null=True, on_delete=django.db.models.deletion.PROTECT,
                                       related_name="descriptor_score", to="reader_study.assignment"),
        ),
        # nullable first, so that going back can add them again before it fills them
        migrations.AlterField(
            model_name="descriptorscore",
            name="item",
            field=models.OneToOneField(null=True, on_delete=django.db.models.deletion.PROTECT,
                                       related_name="score", to="reader_study.descriptoritem"),
        ),
        *(migrations.AlterField(
            model_name="descriptorscore",
            name=name,
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="descriptor_scores", to=to),
        ) for name, to in (("study", "reader_study.study"), ("reader", settings.AUTH_USER_MODEL),
                           ("case", "imaging.case"))),
    ]
