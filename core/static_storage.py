"""The production static files storage: WhiteNoise's compressed manifest storage, each URL worked out once.

Why: ``{% static %}`` asks the storage for a URL on every render, and the manifest storage parses, cleans and
looks the name up each time (``urlsplit``, ``unquote``, the manifest, ``urljoin``): the reading page's static
tags were 6.7 % of its view's time in a py-spy profile of gunicorn (docs/production.md, *Read path*). The
manifest is read once when the process starts and never changes while it runs (a new collectstatic needs a
restart to be served at all), so the answer for a name never changes either: it is kept per name.
``force=True`` and DEBUG are passed through.
"""

from __future__ import annotations

from django.conf import settings
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._urls: dict[str, str] = {}

    def url(self, name, force=False):
        if force or settings.DEBUG:
            return super().url(name, force)
        url = self._urls.get(name)
        if url is None:
            url = self._urls[name] = super().url(name)   # a missing name raises, and is not kept
        return url
