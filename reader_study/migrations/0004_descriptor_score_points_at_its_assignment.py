"""One reading workflow, step 3 of 3: DescriptorScore keeps only its assignment (which has the study,
reader and case); DescriptorItem is gone."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("reader_study", "0003_descriptor_items_into_assignments")]

    operations = [
        migrations.RemoveConstraint(model_name="descriptorscore", name="descriptor_score_once"),
        migrations.RemoveField(model_name="descriptorscore", name="item"),
        migrations.RemoveField(model_name="descriptorscore", name="study"),
        migrations.RemoveField(model_name="descriptorscore", name="reader"),
        migrations.RemoveField(model_name="descriptorscore", name="case"),
        migrations.AlterField(
            model_name="descriptorscore",
            name="assignment",
            field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT,
                                       related_name="descriptor_score", to="reader_study.assignment"),
        ),
        migrations.AlterModelOptions(name="descriptorscore", options={"ordering": ["assignment"]}),
        migrations.DeleteModel(name="DescriptorItem"),
    ]
