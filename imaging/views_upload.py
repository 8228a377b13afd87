"""The coordinator's upload page: a zip or many files, streamed straight to disk, then an import job.

Django keeps uploads under FILE_UPLOAD_MAX_MEMORY_SIZE in memory; a DICOM upload is thousands of small
files, so this view replaces the upload handlers with ``DiskUploadHandler``, which writes each file's
chunks to ``UPLOAD_ROOT/upload-<random>/files/NNNNNN`` as they arrive: no file is ever held in memory,
and no user-given name reaches a path. Only each name's sanitised form is kept (``names.json``), for
the import report. The raw upload is deleted after a successful import unless KEEP_RAW_UPLOADS.

The handlers must be replaced before the request body is read, and CSRF checking reads it, so the
outer view is csrf_exempt and the inner one csrf_protect (Django's documented pattern).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from accounts.permissions import role_required
from accounts.roles import COORDINATOR
from imaging import services
from imaging.forms import UploadOptionsForm
from imaging.importer_sources import looks_like_zip, sanitised_name

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024**3
NAMES_FILE = "names.json"


@dataclass
class StoredUpload:
    """What the handler returns for one uploaded file (it lives on disk, not in memory)."""

    field_name: str
    path: Path
    name: str  # sanitised
    size: int


class DiskUploadHandler(FileUploadHandler):
    """Write every uploaded file to ``dest`` chunk by chunk; companion CSVs get fixed names."""

    def __init__(self, request, dest: Path, max_bytes: int):
        super().__init__(request)
        self.dest, self.max_bytes = Path(dest), max_bytes
        self.count = 0
        self.total = 0
        self.too_large = False
        self.names: dict[str, str] = {}
        self._handle = None
        self._path: Path | None = None

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        if field_name in ("manifest", "boxes"):
            self._path = self.dest / f"{field_name}.csv"
        else:
            self.count += 1
            stored = f"{self.count:06d}"
            self._path = self.dest / "files" / stored
            self.names[stored] = sanitised_name(file_name or "")
        self._handle = open(self._path, "wb")
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.total += len(raw_data)
        if self.total > self.max_bytes:
            self.too_large = True
            self._close()
            raise StopUpload(connection_reset=True)
        self._handle.write(raw_data)
        return None

    def file_complete(self, file_size):
        self._close()
        if file_size == 0 and self.file_name in ("", None):
            self._path.unlink(missing_ok=True)
            return None
        return StoredUpload(self.field_name, self._path, sanitised_name(self.file_name or ""), file_size)

    def upload_interrupted(self):
        self._close()

    def _close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@csrf_exempt
@role_required(COORDINATOR, "importing DICOM is for coordinators")
def upload(request):
    if request.method != "POST":
        return render(request, "imaging/upload.html", {"form": UploadOptionsForm()})
    dest = services.upload_dir_new()
    handler = DiskUploadHandler(
        request, dest, getattr(settings, "IMAGING_UPLOAD_MAX_BYTES", DEFAULT_MAX_UPLOAD_BYTES)
    )
    request.upload_handlers = [handler]
    try:
        return _upload_post(request, dest, handler)
    except Exception:
        shutil.rmtree(dest, ignore_errors=True)
        raise


@csrf_protect
def _upload_post(request, dest: Path, handler: DiskUploadHandler):
    form = UploadOptionsForm(request.POST)
    uploaded = [f for f in request.FILES.getlist("files") if isinstance(f, StoredUpload)]
    problems = []
    if handler.too_large:
        problems.append(f"the upload is larger than the limit of {handler.max_bytes // 1024**3} GiB")
    if not uploaded:
        problems.append("choose a zip archive or DICOM files to upload")
    if problems or not form.is_valid():
        shutil.rmtree(dest, ignore_errors=True)
        for problem in problems:
            messages.error(request, problem)
        return render(request, "imaging/upload.html", {"form": form}, status=400)
    (dest / NAMES_FILE).write_text(json.dumps(handler.names))
    source = dest / "files"
    if len(uploaded) == 1 and looks_like_zip(uploaded[0].path):
        source = uploaded[0].path
    manifest = dest / "manifest.csv" if (dest / "manifest.csv").exists() else None
    boxes = dest / "boxes.csv" if (dest / "boxes.csv").exists() else None
    what = "zip archive" if source.is_file() else f"{len(uploaded)} files"
    label = form.cleaned_data["label"] or f"upload of a {what}"
    try:
        job = services.import_start(
            source=source,
            manifest=manifest,
            boxes=boxes,
            label=f"{label} ({what})",
            upload_dir=dest,
            user=request.user,
        )
    except ValidationError as error:
        shutil.rmtree(dest, ignore_errors=True)
        for field, msgs in error.message_dict.items():
            for message in msgs:
                messages.error(request, f"{field}: {message}")
        return render(request, "imaging/upload.html", {"form": form}, status=400)
    messages.success(request, f"uploaded {what}; the import runs as job {job.pk}")
    return redirect("job_detail", pk=job.pk)
