import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="ReaderProfile",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code", models.CharField(help_text="Reader code used in exports, e.g. R03", max_length=16,
                                          unique=True)),
                ("group", models.CharField(choices=[("specialist", "Specialist (board-certified)"),
                                                    ("practitioner", "Practitioner (not board-certified)")],
                                           max_length=16)),
                ("years_experience", models.PositiveSmallIntegerField(
                    validators=[django.core.validators.MaxValueValidator(70)])),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="reader_profile", to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["code"]},
        ),
    ]
