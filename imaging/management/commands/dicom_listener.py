"""`manage.py dicom_listener [--port N] [--ae-title AE] [--quiet-seconds S] [--inline]` — the DICOM listener."""

import signal
import threading

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from imaging.dicom_listener import Listener
from imaging.models import DicomNode
from jobs import cli


class Command(BaseCommand):
    help = ("Receive studies pushed by PACSes and modalities on the allow-list (C-STORE, C-ECHO), de-identified "
            "in memory; each study becomes an import once quiet (docs/pacs.md). Runs until stopped.")

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=None, help="TCP port (default DICOM_PORT, 11112)")
        parser.add_argument("--ae-title", default=None, help="the platform's AE title (default DICOM_AE_TITLE)")
        parser.add_argument("--quiet-seconds", type=float, default=None,
                            help="a study this long without a new instance is imported (default DICOM_STUDY_QUIET_S)")
        parser.add_argument("--inline", action="store_true",
                            help="run each study's import in this process (one machine without a worker)")

    def handle(self, *args, **o):
        cli.refuse_without_secrets()
        try:
            listener = Listener(ae_title=o["ae_title"], port=o["port"], inline=o["inline"],
                                quiet_seconds=o["quiet_seconds"]).start()
        except ValidationError as exc:
            raise CommandError(cli.validation_message(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot listen on port {o['port'] or settings.DICOM_PORT}: {exc.strerror}") from None
        allowed = list(DicomNode.objects.filter(may_send=True).values_list("ae_title", flat=True))
        self.stdout.write(f"DICOM listener {listener.ae_title} on port {listener.port}; "
                          f"allowed senders: {', '.join(allowed) or 'none yet (manage.py dicom_node add)'}")
        self.stdout.flush()
        stopped = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopped.set())
        stopped.wait()
        listener.stop()
        self.stdout.write("DICOM listener stopped; studies not yet imported wait in their folder for its next start")
