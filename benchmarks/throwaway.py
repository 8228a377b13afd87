"""A throwaway Django for benchmarks: its own data folder (SQLite database, media, uploads) under a temp folder,
migrated, so a benchmark touches nothing of the installation it runs beside. The caller deletes ``root``."""

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def throwaway_django(prefix: str) -> Path:
    """Set up Django on a fresh data folder (DEBUG, quiet logs) and migrate it; returns the temp root."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update({"DATA_DIR": str(root / "var"), "DEBUG": "1", "LOG_LEVEL": "WARNING"})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return root
