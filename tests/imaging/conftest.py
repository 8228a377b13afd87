"""Fixtures of the imaging tests."""

import pytest


@pytest.fixture
def data_dirs(tmp_path, settings):
    """Media and uploads in the test's own folder, one reader process (imports run in the test)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    return tmp_path
