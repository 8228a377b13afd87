from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("training", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="trainedmodel",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, help_text="last sign of life while training", null=True),
        ),
        migrations.AlterField(
            model_name="trainedmodel",
            name="worker",
            field=models.CharField(blank=True, help_text="Celery node name training it", max_length=255),
        ),
    ]
