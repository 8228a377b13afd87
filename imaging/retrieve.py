"""The "pacs_retrieve" job (issue 17, items 2-3): studies pulled from a PACS by accession number or source patient ID.

For each line of the coordinator's list the job finds the studies (C-FIND, study root; or QIDO-RS), then fetches
each one by one of three methods:

- ``get``: C-GET on the same association; each instance arrives as a C-STORE sub-operation and goes through
  `dicom_listener.record_instance` — read, checked and de-identified in memory, recorded without identifiers —
  and each study becomes an import job (`import_received_start`) as soon as it is complete;
- ``move``: C-MOVE to the platform's own listener (`DICOM_AE_TITLE`; the PACS must know it as a destination and
  be on the allow-list): the listener receives and imports, as for any push;
- ``dicomweb``: QIDO-RS to find, WADO-RS to fetch (`dicomweb-client`), each instance re-encoded in memory and
  recorded like a C-GET's.

One job with progress (one unit per line), cancel between studies and resume: lines done and studies fetched are
kept in the job's result, so a resumed job goes on with the rest. What is not found is listed **by line number**
(never by value). The list holds identifiers (accession numbers, patient IDs): it stays in the job's params only
while the job may still need it and is removed when the job has succeeded (as an import forgets its paths).
"""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from imaging import dicom_read, importer_files
from imaging.dicom_listener import STORAGE_CLASSES, decodable_transfer_syntaxes, no_delay, record_instance_safely
from imaging.importer import code_locations
from imaging.models import DicomNode

log = logging.getLogger(__name__)

METHODS = ("get", "move", "dicomweb")
KEYS = {"accession": "AccessionNumber", "patient": "PatientID"}
MAX_LENGTH = {"accession": 16, "patient": 64}      # DICOM: AccessionNumber is SH (16), PatientID LO (64)
MAX_LINES = 5000
PENDING = (0xFF00, 0xFF01)
QIDO_PAGE, QIDO_MAX_PAGES = 100, 100


class RetrieveError(RuntimeError):
    """A node that cannot be reached or refuses: the job fails with this message and can be resumed."""


def parse_list(text: str, *, default_kind: str = "accession") -> list[dict]:
    """The coordinator's list: one accession number or source patient ID per line, ``patient:`` / ``accession:``
    in front to say which (else ``default_kind``); blank lines and ``#`` comments skipped. Bad lines are a
    ValidationError naming their line numbers, never their values."""
    items, bad = [], []
    for number, raw in enumerate(str(text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, value = line.partition(":") if line.split(":", 1)[0].lower() in KEYS else (default_kind, "", line)
        value, kind = value.strip(), kind.lower()
        if not value or len(value) > MAX_LENGTH[kind] or "\\" in value or "*" in value or "?" in value:
            bad.append(number)
            continue
        items.append({"line": number, "kind": kind, "value": value})
    if bad:
        raise ValidationError({"list": f"line(s) {', '.join(map(str, bad[:20]))}: not an accession number (1-16 "
                                       "characters) or patient ID (1-64), or a wildcard or backslash in it"})
    if not items:
        raise ValidationError({"list": "no accession number or patient ID in the list"})
    if len(items) > MAX_LINES:
        raise ValidationError({"list": f"{len(items)} lines: at most {MAX_LINES} per retrieval"})
    return items


def run(job, ctx) -> None:
    from jobs.services import JobCancelled, JobError

    params = job.params
    node = DicomNode.objects.filter(name=params["node"]).first()
    if node is None:
        raise JobError(f"DICOM node {params['node']!r} no longer exists")
    done = set(job.result.get("lines_done", []))
    items = params["items"]
    ctx.progress(done=len(done), total=len(items), step=f"{len(items) - len(done)} line(s) to look up", force=True)
    fetcher = _Fetcher(node, params["method"], job, ctx)
    try:
        for item in items:
            if item["line"] in done:
                continue
            ctx.check_cancel()
            studies = fetcher.find(item)
            if not studies:
                _note(ctx, job, not_found=item["line"])
            for study_uid in studies:
                ctx.check_cancel()
                fetcher.fetch(study_uid)
            done.add(item["line"])
            ctx.set_result(lines_done=sorted(done))
            ctx.progress(done=len(done), step=f"line {item['line']}: {len(studies)} stud(ies)", force=True)
    except RetrieveError as error:
        raise JobError(str(error)) from None
    except (JobCancelled, JobError):
        raise
    except Exception as error:
        # another library's message can quote an accession number, a patient ID or a source UID (dicomweb-client
        # and requests name the URL they asked): neither the job nor the log gets it, only where it was raised
        log.error("retrieval job %s stopped on an unexpected %s at %s", job.pk, type(error).__name__,
                  code_locations(error))
        raise JobError(f"the retrieval from {node.name} stopped on an unexpected error ({type(error).__name__}); "
                       "the worker log says where. What was fetched is kept; resume the job once the cause is "
                       "fixed") from None
    _finish(job, ctx)


def _note(ctx, job, *, not_found: int) -> None:
    ctx.set_result(not_found=sorted({*job.result.get("not_found", []), not_found}))


def _finish(job, ctx) -> None:
    from jobs.models import Job

    result = job.result
    missing = result.get("not_found", [])
    ctx.set_result(summary=f"{len(result.get('lines_done', []))} line(s) looked up, "
                           f"{len(result.get('studies', []))} stud(ies) fetched, "
                           f"{result.get('instances', 0)} instance(s); not found: "
                           f"{'line ' + ', '.join(map(str, missing)) if missing else 'none'}")
    params = {**job.params, "items": f"({len(job.params['items'])} lines, removed after the retrieval)"}
    job.params = params
    Job.objects.filter(pk=job.pk).update(params=params)
    root = Path(settings.UPLOAD_ROOT) / "retrieve" / f"job-{job.pk}"
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    if missing and not result.get("studies"):
        ctx.warn(f"nothing found: {len(missing)} line(s) not found")


class _Fetcher:
    """Find and fetch on one node by one method; fetched studies are remembered in the job's result."""

    def __init__(self, node: DicomNode, method: str, job, ctx):
        self.node, self.method, self.job, self.ctx = node, method, job, ctx
        self.pipeline = importer_files.Pipeline(settings.PSEUDONYM_KEY)
        self.root = Path(settings.UPLOAD_ROOT) / "retrieve" / f"job-{job.pk}"
        self.max_bytes = int(settings.DICOM_MAX_INSTANCE_MB * 1024 * 1024)
        self.source_name = node.source_name or node.name

    # --- find -----------------------------------------------------------------------------------------

    def find(self, item: dict) -> list[str]:
        if self.method == "dicomweb":
            return self._qido(item)
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        query.ModalitiesInStudy = "MR"                 # MR studies only: the import takes nothing else
        setattr(query, KEYS[item["kind"]], item["value"])
        found = []
        with self._association(StudyRootQueryRetrieveInformationModelFind) as association:
            for status, identifier in association.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    raise RetrieveError(f"{self.node.name}: C-FIND got no answer (timeout or aborted association)")
                if status.Status in PENDING and identifier is not None:
                    with dicom_read.quiet_pydicom():   # pydicom's warnings quote an odd UID's value
                        found.append(str(identifier.get("StudyInstanceUID", "")))
                elif status.Status not in (0x0000, *PENDING):
                    raise RetrieveError(f"{self.node.name}: C-FIND refused (status 0x{status.Status:04X})")
        return sorted({uid for uid in found if uid.strip()})

    def _qido(self, item: dict) -> list[str]:
        """QIDO-RS, page by page: dicomweb-client's own `get_remaining` loops for ever on a server that ignores
        the offset (seen with Orthanc's plugin), so paging stops at a page that brings no new study."""
        client, found = self._dicomweb(), set()
        filters = {KEYS[item["kind"]]: item["value"], "ModalitiesInStudy": "MR"}
        for _ in range(QIDO_MAX_PAGES):
            page = client.search_for_studies(search_filters=filters, offset=len(found), limit=QIDO_PAGE)
            new = {s["0020000D"]["Value"][0] for s in page} - found
            if not new:
                break
            found |= new
        return sorted(found)

    # --- fetch ----------------------------------------------------------------------------------------

    def fetch(self, study_uid: str) -> None:
        key = self.pipeline.uid_map(study_uid)        # what the job remembers: the keyed UID, never the source's
        if key in self.job.result.get("studies", []):
            return
        shutil.rmtree(self.root / key, ignore_errors=True)      # a half-fetched study from before a resume
        if self.method == "move":
            count = self._move(study_uid)
        else:
            self._get(study_uid) if self.method == "get" else self._wado(study_uid)
            count = self._import(key)
        self.ctx.set_result(studies=[*self.job.result.get("studies", []), key],
                            instances=self.job.result.get("instances", 0) + count)

    def _get(self, study_uid: str) -> None:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study_uid
        handlers = [(evt.EVT_C_STORE, lambda event: record_instance_safely(event, self.pipeline, self.root,
                                                                            self.max_bytes))]
        with self._association(StudyRootQueryRetrieveInformationModelGet, storage=True,
                               handlers=handlers) as association:
            for status, _ in association.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                _check_final(status, self.node, "C-GET")

    def _move(self, study_uid: str) -> int:
        """Instances the PACS sent to the platform's listener (which imports them)."""
        moved = 0
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study_uid
        with self._association(StudyRootQueryRetrieveInformationModelMove) as association:
            for status, _ in association.send_c_move(query, settings.DICOM_AE_TITLE,
                                                     StudyRootQueryRetrieveInformationModelMove):
                _check_final(status, self.node, "C-MOVE")
                if status and status.Status not in PENDING:
                    moved = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
        return moved

    def _wado(self, study_uid: str) -> None:
        import pydicom

        from imaging.received import record

        for dataset in self._dicomweb().iter_study(study_uid):
            buffer = io.BytesIO()
            try:
                with dicom_read.quiet_pydicom():
                    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)   # in memory: Part 10
            except Exception as error:                # one odd instance never stops the study
                outcome = importer_files.FileRejected(0, f"could not be re-encoded ({type(error).__name__})")
            else:
                outcome = importer_files.process_bytes(self.pipeline, 0, buffer.getvalue())
            del buffer, dataset
            record(self.root, outcome, fallback_study=self.pipeline.uid_map(study_uid),
                   sender_ae=f"DICOMweb {self.node.name}")

    def _import(self, key: str) -> int:
        """The fetched study's import (run here when the job runs inline); the instances received."""
        from imaging.received import ReceivedStudy
        from imaging.services import import_received_start
        from jobs.services import job_run

        folder = self.root / key
        if not folder.exists():
            return 0
        meta = ReceivedStudy(folder).meta()
        job = import_received_start(folder=folder, sender_ae=", ".join(meta.get("senders", [self.node.ae_title])),
                                    instances=meta.get("instances", 0), source_name=self.source_name,
                                    enqueue=not self.ctx.inline, user=self.job.created_by)
        self.ctx.set_result(imports=[*self.job.result.get("imports", []), job.pk])
        if self.ctx.inline:
            job_run(job_pk=job.pk, inline=True)
        return meta.get("instances", 0)

    # --- connections ------------------------------------------------------------------------------------

    def _association(self, model, *, storage: bool = False, handlers=()):
        ae = AE(ae_title=settings.DICOM_AE_TITLE)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
        ae.add_requested_context(model)
        roles = []
        if storage:                                  # C-GET: the PACS stores to us on this association
            for sop_class in STORAGE_CLASSES:
                ae.add_requested_context(sop_class, decodable_transfer_syntaxes())
                roles.append(build_role(sop_class, scp_role=True))
        association = ae.associate(self.node.host, self.node.port, ae_title=self.node.ae_title, ext_neg=roles,
                                   evt_handlers=[(evt.EVT_CONN_OPEN, no_delay), *handlers])
        if not association.is_established:
            raise RetrieveError(f"{self.node.name} ({self.node.ae_title} at {self.node.host}:{self.node.port}) "
                                "refused or did not answer the association; check the node and that it knows "
                                f"the platform as {settings.DICOM_AE_TITLE}")
        return _Releasing(association)

    def _dicomweb(self):
        from dicomweb_client.api import DICOMwebClient

        if not self.node.dicomweb_url:
            raise RetrieveError(f"{self.node.name} has no DICOMweb root: set it on the node")
        return DICOMwebClient(url=self.node.dicomweb_url)


class _Releasing:
    def __init__(self, association):
        self.association = association

    def __enter__(self):
        return self.association

    def __exit__(self, *exc):
        if self.association.is_established:
            self.association.release()


def _check_final(status, node: DicomNode, what: str) -> None:
    if not status:
        raise RetrieveError(f"{node.name}: {what} got no answer (timeout or aborted association)")
    if status.Status not in (0x0000, *PENDING, 0xB000):
        failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
        raise RetrieveError(f"{node.name}: {what} ended with status 0x{status.Status:04X}"
                            + (f" ({failed} instance(s) not sent)" if failed else ""))


def retrieve_start(*, node: str, text: str, method: str = "get", default_kind: str = "accession", user=None,
                   enqueue: bool = True):
    """Start a "pacs_retrieve" job for the lines of ``text`` from ``node``; a ValidationError names the field."""
    from jobs.services import job_create

    found = DicomNode.objects.filter(name=node).first()
    if found is None:
        raise ValidationError({"node": f"no DICOM node named {node!r} (manage.py dicom_node list)"})
    if method not in METHODS:
        raise ValidationError({"method": f"one of {', '.join(METHODS)}"})
    if method == "dicomweb" and not found.dicomweb_url:
        raise ValidationError({"method": f"{node} has no DICOMweb root: set it, or retrieve with get or move"})
    if default_kind not in KEYS:
        raise ValidationError({"kind": f"one of {', '.join(KEYS)}"})
    items = parse_list(text, default_kind=default_kind)
    return job_create(kind="pacs_retrieve", user=user, enqueue=enqueue, total=len(items),
                      params={"node": node, "method": method, "items": items})


def retrieve_list_discard(*, job, by) -> None:
    """Forget the list a failed or cancelled retrieval keeps for a resume (accession numbers, patient IDs): the job
    can no longer be resumed; what it fetched and imported stays. Coordinators only."""
    from django.db import transaction

    from imaging.services import require_coordinator
    from jobs.models import NOT_RESUMABLE, Job, JobStatus

    require_coordinator(by, "discarding a retrieval's list")
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=getattr(job, "pk", job))
        if job.kind != "pacs_retrieve":
            raise ValidationError(f"job {job.pk} is not a PACS retrieval")
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED) or job.worker_lost:
            raise ValidationError(f"job {job.pk} is {job.display_status}: only a failed or cancelled retrieval's "
                                  "list can be discarded (cancel it first)")
        items = job.params.get("items")
        count = len(items) if isinstance(items, list) else 0
        job.params = {**job.params, "items": f"({count} lines, discarded)",
                      NOT_RESUMABLE: "its list was discarded; start a new retrieval"}
        job.save(update_fields=["params"])
    log.info("list of retrieval job %s discarded by user %s", job.pk, by.pk)


def unfinished_retrievals(user):
    """The user's retrievals that keep their list (failed or cancelled, resumable): the retrieve page lists them."""
    from jobs.models import JobStatus
    from jobs.selectors import jobs_visible_to

    return [job for job in jobs_visible_to(user).filter(kind="pacs_retrieve",
                                                        status__in=[JobStatus.FAILED, JobStatus.CANCELLED])
            if isinstance(job.params.get("items"), list)]
