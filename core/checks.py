"""System checks of the platform's own settings."""

from django.conf import settings
from django.core.checks import Error, Tags, register

from core.env import missing_secrets_message


@register(Tags.security, deploy=True)
def secrets_are_set(app_configs=None, **kwargs) -> list[Error]:
    """config.E001, in `check --deploy`. Not in every command's checks, so `makemigrations --check` runs
    without secrets; serving (wsgi.py), the Celery worker and every job (jobs.services.job_run) refuse."""
    if not settings.MISSING_SECRETS:
        return []
    return [Error(missing_secrets_message(settings.MISSING_SECRETS), id="config.E001",
                  hint="set the variables in the environment, or DEBUG=1 on a development machine")]
