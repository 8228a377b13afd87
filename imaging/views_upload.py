"""The coordinator's upload page: a zip or many files, streamed straight to disk, then an import job.

Django keeps uploads under FILE_UPLOAD_MAX_MEMORY_SIZE in memory; a DICOM upload is thousands of small
files, so this view replaces the upload handlers with ``DiskUploadHandler``, which writes each file's
chunks to ``UPLOAD_ROOT/upload-<random>/files/NNNNNN`` as they arrive: no file is ever held in memory,
and no user-given name reaches a path. Only each name's sanitised form is kept (``names.json``), for
the import report. The raw upload is deleted after a successful import unless KEEP_RAW_UPLOADS.

The handlers must be replaced before the request body is read, and CSRF checking reads it, so the
outer view is csrf_exempt and the inner one csrf_protect (Django's documented pattern). Reading the
body for the token would write the files before the token is checked, so the handler checks first:
it parses the body itself (``handle_raw_input``) and, when the first file begins, runs Django's own
CSRF check (Origin, Referer, token) on the fields read so far. A refused request stops there, before
any byte is written; the token must therefore come before the first file (the page's form puts it
first) or in the ``X-CSRFToken`` header. The upload folder is made only for the first accepted file,
and every answer other than a started import removes it (a refused, too large, interrupted or failed
upload leaves nothing under UPLOAD_ROOT). Errors are answered with fixed phrases: an exception's
message (an OSError's names a server path) reaches neither the page nor the log.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, TooManyFilesSent, ValidationError
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload
from django.http import UnreadablePostError
from django.http.multipartparser import MultiPartParser
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from accounts.permissions import role_required
from accounts.roles import COORDINATOR
from imaging import services
from imaging.forms import UploadOptionsForm
from imaging.importer_sources import looks_like_zip, sanitised_name

log = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024**3
NAMES_FILE = "names.json"


@dataclass
class StoredUpload:
    """What the handler returns for one uploaded file (it lives on disk, not in memory)."""

    field_name: str
    path: Path
    name: str  # sanitised
    size: int

    def close(self) -> None:
        """Django closes every uploaded file when the request ends or its parsing fails; the handler
        has closed this one already."""


class _FieldsSoFar:
    """The request as CsrfViewMiddleware sees it, with the form fields read so far as its POST."""

    def __init__(self, request, fields):
        self._request, self.POST = request, fields

    def __getattr__(self, name):
        return getattr(self._request, name)


def _upload_view_for_csrf(request):  # the view the gate's CSRF check is run for (never called)
    raise AssertionError


def csrf_passes(request, fields) -> bool:
    """Django's CSRF check (Origin, Referer on HTTPS, token from ``fields`` or the X-CSRFToken header)."""
    check = CsrfViewMiddleware(lambda _request: None)
    return check.process_view(_FieldsSoFar(request, fields), _upload_view_for_csrf, (), {}) is None


class DiskUploadHandler(FileUploadHandler):
    """Write every uploaded file to a fresh upload folder chunk by chunk, once the request passed its
    CSRF check; companion CSVs get fixed names. ``dest`` is None until the first file is accepted."""

    def __init__(self, request, max_bytes: int):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.dest: Path | None = None
        self.count = 0
        self.total = 0
        self.too_large = False
        self.refused = False  # the CSRF check failed: nothing was written
        self.kept = False  # an import job owns the folder now
        self.names: dict[str, str] = {}
        self._handle = None
        self._path: Path | None = None
        self._parser: MultiPartParser | None = None
        self._checked = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        """Parse the body with a parser this handler can see, so that ``new_file`` can read the form
        fields that came before the first file (the CSRF token among them)."""
        if self._parser is not None:
            return None  # the nested parser's own call: parse as usual
        self._parser = MultiPartParser(META, input_data, [self], encoding)
        return self._parser.parse()

    def _csrf_ok(self) -> bool:
        fields = getattr(self._parser, "_post", None)  # the fields parsed so far; fail closed without
        return fields is not None and csrf_passes(self.request, fields)

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        if not self._checked:
            if not self._csrf_ok():
                self.refused = True
                raise StopUpload(connection_reset=True)
            self._checked = True
        if self.dest is None:
            self.dest = services.upload_dir_new()
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

    def discard(self) -> None:
        """Remove whatever this upload wrote (unless an import job owns it)."""
        self._close()
        if self.dest is not None and not self.kept:
            shutil.rmtree(self.dest, ignore_errors=True)
            self.dest = None

    def _close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def max_files() -> int | None:
    return settings.DATA_UPLOAD_MAX_NUMBER_FILES


def upload_description(*, is_zip: bool, n_files: int) -> str:
    """What was uploaded, in words: "a zip archive", "1 file", "3 files"."""
    if is_zip:
        return "a zip archive"
    return f"{n_files} file{'' if n_files == 1 else 's'}"


def upload_title(label: str, what: str) -> str:
    """The import's title: the coordinator's label with what was uploaded ("site A (3 files)"), or, without a label,
    "upload of 3 files" (not "upload of a 1 files (1 files)", which said the same thing twice, wrongly)."""
    return f"{label} ({what})" if label else f"upload of {what}"


@csrf_exempt
@role_required(COORDINATOR, "importing DICOM is for coordinators")
def upload(request):
    if request.method != "POST":
        return render(request, "imaging/upload.html", {"form": UploadOptionsForm()})
    handler = DiskUploadHandler(
        request, getattr(settings, "IMAGING_UPLOAD_MAX_BYTES", DEFAULT_MAX_UPLOAD_BYTES)
    )
    request.upload_handlers = [handler]
    try:
        return _upload_post(request, handler)
    except TooManyFilesSent:
        log.warning("upload refused: more than %s files", max_files())
        return _refused(
            request,
            f"more than {max_files():,} files in one upload: the limit is {max_files():,} files "
            "(DATA_UPLOAD_MAX_NUMBER_FILES); upload them as one zip archive instead",
        )
    except UnreadablePostError:
        log.warning("upload interrupted: the request body ended early")
        return _refused(request, "the upload was interrupted before it was complete; try again")
    except OSError as error:  # its message names a server path: only the class goes on
        log.error("upload could not be stored (%s)", type(error).__name__)
        return _refused(
            request,
            f"the upload could not be stored on the server ({type(error).__name__}); "
            "ask an administrator (is the disk full?)",
            status=500,
        )
    finally:
        handler.discard()


def _refused(request, *problems: str, form=None, status: int = 400):
    for problem in problems:
        messages.error(request, problem)
    form = form if form is not None else UploadOptionsForm()
    return render(request, "imaging/upload.html", {"form": form}, status=status)


@csrf_protect
def _upload_post(request, handler: DiskUploadHandler):
    form = UploadOptionsForm(request.POST)
    uploaded = [f for f in request.FILES.getlist("files") if isinstance(f, StoredUpload)]
    if handler.refused:  # csrf_protect refuses it too; this is the second lock
        raise PermissionDenied("CSRF verification failed: the upload was not stored")
    problems = []
    if handler.too_large:
        problems.append(f"the upload is larger than the limit of {handler.max_bytes // 1024**3} GiB")
    if not uploaded:
        problems.append("choose a zip archive or DICOM files to upload")
    if problems or not form.is_valid():
        return _refused(request, *problems, form=form)
    dest = handler.dest
    (dest / NAMES_FILE).write_text(json.dumps(handler.names))
    source = dest / "files"
    if len(uploaded) == 1 and looks_like_zip(uploaded[0].path):
        source = uploaded[0].path
    manifest = dest / "manifest.csv" if (dest / "manifest.csv").exists() else None
    boxes = dest / "boxes.csv" if (dest / "boxes.csv").exists() else None
    what = upload_description(is_zip=source.is_file(), n_files=len(uploaded))
    try:
        job = services.import_start(
            source=source,
            manifest=manifest,
            boxes=boxes,
            label=upload_title(form.cleaned_data["label"], what),
            upload_dir=dest,
            source_name=form.cleaned_data["source_name"],
            unnamed_are_this_source=form.cleaned_data["unnamed_are_this_source"],
            user=request.user,
        )
    except ValidationError as error:
        return _refused(
            request,
            *(f"{field}: {message}" for field, msgs in error.message_dict.items() for message in msgs),
            form=form,
        )
    handler.kept = True
    messages.success(request, f"uploaded {what}; the import runs as job {job.pk}")
    return redirect("job_detail", pk=job.pk)
