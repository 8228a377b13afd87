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
import time
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

from imaging import dicom_read, importer_files, nodes, received
from imaging.importer import code_locations
from imaging.received import ReceivedStudy, received_lock

log = logging.getLogger(__name__)

STORAGE_CLASSES = (MRImageStorage, EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage)
NOBODY = "\\"                 # no AE title contains a backslash: an allow-list of it lets nobody in
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000
READY_PREFIX = "ready-"
RETRY_S = 60          # a study whose import could not start is tried again after this long


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
        self._retry_after: dict[str, float] = {}
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
            return record_instance_safely(event, self.pipeline, self.root, self.max_bytes)
        finally:
            close_old_connections()

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
        """Every study quiet for the quiet period (or every study, ``force``) becomes an import; returns the jobs.
        A study folder left ready but without its import (the listener stopped in between) is imported too."""
        started = []
        for folder in sorted(self.root.iterdir()) if self.root.exists() else ():
            if not folder.is_dir() or (folder.name.startswith(READY_PREFIX) and _has_import(folder)):
                continue
            if time.monotonic() < self._retry_after.get(folder.name, 0):
                continue
            ready = self._claim(folder, force)
            if ready is None:
                continue
            try:
                started.append(self._import(ready))
            except Exception as error:            # e.g. a source name is needed: an admin fixes the node
                self._retry_after[ready.name] = time.monotonic() + RETRY_S
                log.error("DICOM listener: the import of a received study could not start (%s: %s); retried in "
                          "%d s", type(error).__name__, _message(error), RETRY_S)
        if started:                                # a fresh pipeline: its per-process caches do not grow for ever
            importer_files.forget_pipeline(self.pipeline)
            self.pipeline = importer_files.Pipeline(settings.PSEUDONYM_KEY)
        return started

    def _claim(self, folder: Path, force: bool) -> Path | None:
        """The study's folder renamed ready for its import, under the lock instances are recorded with (so no
        instance is written into a folder that has just moved); None while it is not quiet yet."""
        if folder.name.startswith(READY_PREFIX):
            return folder
        with received_lock():
            if not force and ReceivedStudy(folder).quiet_for() < self.quiet_seconds:
                return None
            ready = folder.with_name(f"{READY_PREFIX}{uuid.uuid4().hex}")
            folder.rename(ready)                  # later instances of the study start a new folder
            return ready

    def _import(self, ready: Path) -> int:
        from imaging.services import import_received_start
        from jobs.services import job_run

        meta = ReceivedStudy(ready).meta()
        ae_title, address = (meta.get("sender") or ["?", None])[:2]
        node = nodes.sender(ae_title, address)
        job = import_received_start(folder=ready, sender_ae=", ".join(meta.get("senders") or [ae_title]),
                                    instances=meta.get("instances", 0),
                                    source_name=(node.source_name or node.name) if node else "",
                                    enqueue=not self.inline)
        self.jobs.append(job.pk)
        if self.inline:
            job_run(job_pk=job.pk, inline=True)
        return job.pk


def _message(error: Exception) -> str:
    """A ValidationError's messages (they name fields and settings, never values of a file); else nothing."""
    from django.core.exceptions import ValidationError

    return "; ".join(error.messages) if isinstance(error, ValidationError) else ""


def _has_import(folder: Path) -> bool:
    from jobs.models import Job

    return Job.objects.filter(kind="import_dicom", params__source=str(folder.resolve())).exists()


def record_instance_safely(event, pipeline, root: Path, max_bytes: int):
    """`record_instance`, never raising: one instance that cannot be recorded never takes the association (and
    the other instances) down; the sender is told to send it again."""
    try:
        return record_instance(event, pipeline, root, max_bytes)
    except Exception as error:
        log.error("DICOM listener: an instance could not be recorded (%s at %s)", type(error).__name__,
                  code_locations(error))
        return _status(OUT_OF_RESOURCES, "the platform could not record this instance; send it again")


def record_instance(event, pipeline, root: Path, max_bytes: int):
    """The C-STORE handler's work, here and in a C-GET (`imaging.retrieve`): read, check and de-identify the
    instance in memory, record it under ``root/<keyed study UID>/`` (with the sender's AE title and address);
    the status to answer."""
    peer = event.assoc.requestor if event.assoc.is_acceptor else event.assoc.acceptor
    sender = (str(peer.ae_title).strip(), str(peer.address))
    data = event.encoded_dataset(include_meta=True)
    if len(data) > max_bytes:
        outcome = importer_files.FileRejected(0, f"instance larger than {max_bytes // (1024 * 1024)} MB")
    else:
        outcome = importer_files.process_bytes(pipeline, 0, data)
    del data                                      # the identifying bytes go no further than this function
    fallback = "" if getattr(outcome, "study_uid", "") else _study_of(event, pipeline)
    outcome = received.record(root, outcome, fallback_study=fallback, sender_ae=sender[0], sender_address=sender[1])
    if isinstance(outcome, importer_files.FileRejected):
        too_big = outcome.reason.startswith("instance larger than")
        return _status(OUT_OF_RESOURCES if too_big else CANNOT_UNDERSTAND, outcome.reason)
    return SUCCESS


def _study_of(event, pipeline) -> str:
    """The keyed study UID of an instance the pipeline refused (its reject is reported with its study), or the
    association's own bucket when not even that can be read."""
    try:
        with dicom_read.quiet_pydicom():          # pydicom's warnings quote an odd UID's value
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
