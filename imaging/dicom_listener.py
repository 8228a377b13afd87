"""The DICOM listener (Storage SCP, issue 17): PACSes and modalities push studies to the platform over C-STORE.

Built on pynetdicom. Who may send: only nodes on the allow-list (`imaging.nodes`, `DicomNode.may_send`), by
calling AE title and, unless the node allows any address, from its host; anyone else's association is rejected
by pynetdicom's own check ("calling AE title not recognised"), read from the database at every association, so
an admin's change takes effect at once. C-ECHO answers allowed nodes. Presentation contexts: the MR image storage
SOP classes the import accepts, in every transfer syntax pydicom can decode here.

What happens to an instance: it is read, validated and classified **in memory** by the import's own pipeline
(`importer_files.process_bytes`), and only then written, as the import keeps files (`imaging.received`: pixels,
geometry, keyed UIDs and hashes, cleaned attributes): nothing identifying reaches the disk, not even a spool.
An instance the import would reject is answered with a failure status whose comment is the reason, and the
reason is kept for the import's report. Instances are grouped by (keyed) study; once a study has been quiet for
`DICOM_STUDY_QUIET_S` seconds its folder becomes one import job (`import_dicom`, source kind "received"),
labelled with the sending AE title, with progress and rejects on its job page like any import. More instances
of that study arriving later make another import. `inline` runs each import in this process (one machine
without a worker); otherwise it is queued for a worker.

Limits: `DICOM_MAX_ASSOCIATIONS` at once, instances above `DICOM_MAX_INSTANCE_MB` refused (out of resources).
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
    Verification,
)

from imaging import importer_files, nodes
from imaging.received import ReceivedStudy

log = logging.getLogger(__name__)

STORAGE_CLASSES = (MRImageStorage, EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage)
NOBODY = "\\"                 # no AE title contains a backslash: an allow-list of it lets nobody in
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
READY_PREFIX = "ready-"


def decodable_transfer_syntaxes() -> list[str]:
    """Every transfer syntax pydicom can decode pixel data of, here (the import reads nothing else)."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import AllTransferSyntaxes

    found = []
    for uid in AllTransferSyntaxes:
        try:
            if get_decoder(uid).is_available:
                found.append(uid)
        except NotImplementedError:
            continue
    return found


class _AllowListAE(AE):
    """pynetdicom's AE whose required calling AE titles are the nodes allowed from the association's address."""

    @property
    def require_calling_aet(self) -> list[str]:
        association = threading.current_thread()
        address = getattr(getattr(association, "requestor", None), "address", None)
        try:
            return [n.ae_title for n in nodes.senders_allowed_from(address)] or [NOBODY]
        finally:
            connection.close()           # pynetdicom's threads are not Django's: leave no connection behind


class Listener:
    """One Storage SCP. ``start()`` serves in the background; ``flush()`` turns quiet studies into imports."""

    def __init__(self, *, ae_title: str | None = None, port: int | None = None, host: str = "0.0.0.0",
                 inline: bool = False, quiet_seconds: float | None = None):
        self.ae_title = nodes.clean_ae_title(ae_title or settings.DICOM_AE_TITLE)
        self.port = settings.DICOM_PORT if port is None else port
        self.host, self.inline = host, inline
        self.quiet_seconds = settings.DICOM_STUDY_QUIET_S if quiet_seconds is None else quiet_seconds
        self.root = Path(settings.UPLOAD_ROOT) / "dicom-in"
        self.pipeline = importer_files.Pipeline(settings.PSEUDONYM_KEY)
        self.max_bytes = int(settings.DICOM_MAX_INSTANCE_MB * 1024 * 1024)
        self.server = None
        self.jobs: list[int] = []
        self._stop = threading.Event()

    def application_entity(self) -> AE:
        ae = _AllowListAE(ae_title=self.ae_title)
        ae.maximum_associations = settings.DICOM_MAX_ASSOCIATIONS
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = 60
        syntaxes = decodable_transfer_syntaxes()
        for sop_class in STORAGE_CLASSES:
            ae.add_supported_context(sop_class, syntaxes)
        ae.add_supported_context(Verification)
        return ae

    def start(self) -> Listener:
        self.root.mkdir(parents=True, exist_ok=True)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_REJECTED, _log_rejected),
                    (evt.EVT_CONN_OPEN, no_delay)]
        self.server = self.application_entity().start_server((self.host, self.port), block=False,
                                                              evt_handlers=handlers)
        self.port = self.server.server_address[1]
        threading.Thread(target=self._flush_loop, name="dicom-listener-flush", daemon=True).start()
        log.info("DICOM listener %s on port %s (quiet period %s s, %s)", self.ae_title, self.port,
                 self.quiet_seconds, "imports run here" if self.inline else "imports queued for a worker")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.shutdown()

    # --- receiving ------------------------------------------------------------------------------------

    def _on_store(self, event):
        try:
            return self._store(event)
        except Exception as error:       # never let one instance take the association (and the others) down
            log.error("DICOM listener: an instance could not be recorded (%s)", type(error).__name__)
            return _status(OUT_OF_RESOURCES, "the platform could not record this instance; send it again")
        finally:
            close_old_connections()

    def _store(self, event):
        return record_instance(event, self.pipeline, self.root, self.max_bytes)

    # --- importing ------------------------------------------------------------------------------------

    def _flush_loop(self) -> None:
        while not self._stop.wait(min(1.0, max(0.05, self.quiet_seconds / 4))):
            try:
                self.flush()
            except Exception as error:
                log.error("DICOM listener: starting an import failed (%s: %s)", type(error).__name__, error)
            finally:
                close_old_connections()

    def flush(self, *, force: bool = False) -> list[int]:
        """Every study quiet for the quiet period (or every study, ``force``) becomes an import; returns the jobs."""
        started = []
        for folder in sorted(self.root.iterdir()) if self.root.exists() else ():
            if not folder.is_dir() or folder.name.startswith(READY_PREFIX):
                continue
            study = ReceivedStudy(folder)
            if force or study.quiet_for() >= self.quiet_seconds:
                started.append(self._import(folder))
        return started

    def _import(self, folder: Path) -> int:
        from imaging.models import DicomNode
        from imaging.services import import_received_start
        from jobs.services import job_run

        ready = folder.with_name(f"{READY_PREFIX}{uuid.uuid4().hex}")
        folder.rename(ready)                      # later instances of the study start a new folder
        meta = ReceivedStudy(ready).meta()
        senders = meta.get("senders") or ["?"]
        node = DicomNode.objects.filter(ae_title=senders[0], may_send=True).first()
        try:
            job = import_received_start(folder=ready, sender_ae=", ".join(senders),
                                        instances=meta.get("instances", 0),
                                        source_name=(node.source_name or node.name) if node else "",
                                        enqueue=not self.inline)
        except Exception:
            ready.rename(folder)                  # kept as received; retried after the next quiet period
            raise
        self.jobs.append(job.pk)
        if self.inline:
            job_run(job_pk=job.pk, inline=True)
        return job.pk


def record_instance(event, pipeline, root: Path, max_bytes: int):
    """The C-STORE handler's work, here and in a C-GET (`imaging.retrieve`): read, check and de-identify the
    instance in memory, record it under ``root/<keyed study UID>/``; the status to answer."""
    sender_ae = str(event.assoc.requestor.ae_title if event.assoc.is_acceptor else event.assoc.acceptor.ae_title)
    data = event.encoded_dataset(include_meta=True)
    if len(data) > max_bytes:
        return _status(OUT_OF_RESOURCES, f"instance larger than {max_bytes // (1024 * 1024)} MB")
    outcome = importer_files.process_bytes(pipeline, 0, data)
    del data                                      # the identifying bytes go no further than this function
    if isinstance(outcome, importer_files.FileSkipped):
        outcome = importer_files.FileRejected(0, outcome.reason)
    study = getattr(outcome, "study_uid", "") or _study_of(event, pipeline)
    ReceivedStudy(root / study).add(outcome, sender_ae=sender_ae.strip())
    if isinstance(outcome, importer_files.FileRejected):
        return _status(CANNOT_UNDERSTAND, outcome.reason)
    return SUCCESS


def _study_of(event, pipeline) -> str:
    """The keyed study UID of an instance the pipeline refused (its reject is reported with its study), or the
    association's own bucket when not even that can be read."""
    try:
        uid = str(event.dataset.StudyInstanceUID)
        if uid.strip():
            return pipeline.uid_map(uid)
    except Exception:                             # any decoding error: the instance is malformed
        pass
    return f"unreadable-{event.assoc.native_id}"


def no_delay(event) -> None:
    """TCP_NODELAY on the association's socket: a C-STORE is a command and a data set in separate writes, and
    Nagle's algorithm with delayed ACKs would hold each instance ~40 ms (measured: 21 against 182 instances/s)."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status


def _log_rejected(event) -> None:
    requestor = event.assoc.requestor
    log.warning("DICOM listener: association from %s:%s refused: calling AE title %r is not on the allow-list "
                "for that address", requestor.address, requestor.port, str(requestor.ae_title).strip())
