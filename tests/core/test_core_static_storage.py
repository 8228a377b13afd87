"""core.static_storage: the manifest storage's URLs, each worked out once per name."""

import json

import pytest
from whitenoise.storage import CompressedManifestStaticFilesStorage

from core.static_storage import StaticStorage


@pytest.fixture
def root(tmp_path, settings):
    settings.DEBUG = False
    (tmp_path / "staticfiles.json").write_text(json.dumps({
        "paths": {"css/app.css": "css/app.0123456789ab.css"}, "version": "1.1", "hash": "0123456789ab"}))
    return tmp_path


def test_urls_equal_the_manifest_storages_and_are_kept(root, monkeypatch):
    storage = StaticStorage(location=str(root), base_url="/static/")
    plain = CompressedManifestStaticFilesStorage(location=str(root), base_url="/static/")
    assert storage.url("css/app.css") == plain.url("css/app.css") == "/static/css/app.0123456789ab.css"
    monkeypatch.setattr(CompressedManifestStaticFilesStorage, "url", lambda *a, **k: pytest.fail("not kept"))
    assert storage.url("css/app.css") == "/static/css/app.0123456789ab.css"


def test_a_name_missing_from_the_manifest_still_raises_every_time(root):
    storage = StaticStorage(location=str(root), base_url="/static/")
    for _ in range(2):
        with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
            storage.url("js/missing.js")


def test_debug_and_force_go_to_the_manifest_storage(root, settings):
    storage = StaticStorage(location=str(root), base_url="/static/")
    settings.DEBUG = True
    assert storage.url("css/app.css") == "/static/css/app.css"          # unhashed in DEBUG, as Django does
    settings.DEBUG = False
    assert storage.url("css/app.css", force=True) == "/static/css/app.0123456789ab.css"
