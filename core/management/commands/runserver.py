"""`runserver` that refuses to start without the production secrets: one line, non-zero exit.

Django's own runserver loads the WSGI application (config.wsgi, which refuses) in its serving thread, so it
printed a traceback and stayed alive serving nothing. The refusal comes first here, before the autoreloader.
"""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from whitenoise.runserver_nostatic.management.commands.runserver import Command as WhiteNoiseRunserver

from core.env import require_secrets


class Command(WhiteNoiseRunserver):
    def handle(self, *args, **options):
        try:
            require_secrets()
        except ImproperlyConfigured as exc:
            raise CommandError(f"server not started: {exc}") from None
        return super().handle(*args, **options)
