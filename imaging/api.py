"""Imaging API: a series' volume and metadata (the viewer's two requests), tumour boxes, cases.

``GET /api/series/<pk>/volume``: the uint16 little-endian volume, sent as the gzip file written at
import with ``Content-Encoding: gzip`` (the browser inflates it; no CPU spent here), an ETag from the
volume's SHA-256 and ``Cache-Control: private``; a client that does not accept gzip gets it inflated.
A request whose ``?v=`` names the volume's content (the reader payload's URLs) is cached as immutable.
``?slices=FIRST-LAST`` (0-based, inclusive; or one index) answers only those frames, cut from the stored file
as their own gzip member without inflating anything (``importer_store.cut_frames``), with an ETag of its own:
the viewer draws the slice it opens on from the first small request and fills the rest behind it
(docs/reader_study_loading.md). A range outside the series is 400 with the valid range.
``GET /api/series/<pk>/meta``: shape, spacing, positions, orientation, rescale, default window.
Both only for coordinators and admins (``selectors.series_visible_to``); anyone else gets 404, as if it did
not exist. Readers get volumes from reader_study (``/api/reading/<assignment>/series/<handle>/volume``), which uses
``volume_response`` here with its own permission rule (the cases of their open studies).
Never a DICOM header, never a source UID.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from types import SimpleNamespace

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import FileResponse, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import api_view, renderer_classes
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from accounts.permissions import require_role
from accounts.roles import COORDINATOR, is_coordinator
from core.serializers import errors
from imaging import importer_store, selectors, services
from imaging.models import Series
from imaging.serializers import (
    BoxReasonSerializer,
    BoxSerializer,
    BoxWriteSerializer,
    CaseSerializer,
    SeriesMetaSerializer,
)

VOLUME_CACHE_SECONDS = 7 * 24 * 3600  # a stored volume never changes: its ETag is its content hash
# A URL that names the content (?v=<first 16 hex digits of its SHA-256>, as the reader payload builds it)
# can never point at other bytes: the browser keeps it for a year and never asks again, not even to revalidate.
VERSIONED_CACHE_CONTROL = "private, max-age=31536000, immutable"
_CHUNK = 512 * 1024


class OctetStreamRenderer(BaseRenderer):
    media_type = "application/octet-stream"
    format = "bin"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else json.dumps(data).encode()


def _series_or_404(user, pk: int) -> Series:
    try:
        return selectors.series_for_user(user, pk)
    except ObjectDoesNotExist:
        raise NotFound("no such series") from None


def _etag_matches(request, etag: str) -> bool:
    header = request.headers.get("If-None-Match", "")
    return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in header.split(",")) if header else False


VOLUME_RESPONSES = {(200, "application/octet-stream"): OpenApiTypes.BINARY,
                    304: OpenApiResponse(description="not modified (If-None-Match names the ETag)"),
                    **errors(400, 403, 404)}
VOLUME_PARAMETERS = [
    OpenApiParameter("v", str, description="the volume's version as the payload gives it: cached as immutable"),
    OpenApiParameter("slices", str, description="FIRST-LAST (0-based, inclusive) or one index: only those "
                     "frames, frames × rows × cols"),
]
_SLICES = re.compile(r"(\d{1,6})(?:-(\d{1,6}))?")


def requested_slices(request, n_slices: int) -> tuple[int, int] | None:
    """The ``?slices=`` range as (first, last), inclusive; None without the parameter; 400 when it is malformed
    or outside the series."""
    text = request.GET.get("slices")
    if text is None:
        return None
    match = _SLICES.fullmatch(text.strip())
    if not match:
        raise BadRequest({"slices": [f"{text!r} is not a slice range: expected FIRST-LAST (0-based, inclusive, "
                                     "e.g. 0-3) or one index"]})
    first, last = int(match[1]), int(match[2] if match[2] is not None else match[1])
    if first > last or last >= n_slices:
        raise BadRequest({"slices": [f"slices {first}-{last} are outside this series: it has {n_slices} "
                                     f"slices (0-{n_slices - 1})"]})
    return first, last


@extend_schema(
    responses=VOLUME_RESPONSES, parameters=VOLUME_PARAMETERS,
    description="The series volume (coordinators and admins; readers use "
    "/api/reading/<assignment>/series/<handle>/volume): uint16 little-endian, frames × rows × cols "
    "(see /meta), gzip content-encoded.",
)
@api_view(["GET"])
@renderer_classes([OctetStreamRenderer, JSONRenderer])
def series_volume(request, pk: int):
    return volume_response(request, selectors.series_visible_to(request.user).filter(pk=pk)
                           .values(*VOLUME_FIELDS).first())


VOLUME_FIELDS = ("volume_path", "volume_sha256", "n_slices", "rows", "cols")


def volume_response(request, series: dict | None, *, tag=lambda volume_sha256: volume_sha256):
    """The volume of ``series`` (a row of ``VOLUME_FIELDS``, already chosen by the caller's permission
    rule), or 404 for None. A plain row, not a model: the viewer asks for several volumes per case, so no Case
    join and no JSON decoded. Used by this API and by reader_study's volume endpoint for readers.

    ``tag``: the content hash as this caller's client may see it, for the ETag and ``?v=`` (readers get one
    keyed to their assignment, so that a volume's ETag cannot link two views of a case)."""
    if series is None:
        raise NotFound("no such series")
    series = SimpleNamespace(**series)
    path = importer_store.volume_file(series)
    if not series.volume_path or not path.exists():
        raise NotFound("the volume of this series is missing from the store")
    public = tag(series.volume_sha256) if series.volume_sha256 else ""
    gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "").lower()
    frames = requested_slices(request, series.n_slices)
    part = f"-s{frames[0]}-{frames[1]}" if frames else ""
    etag = f'"{public[:32]}{part}{"-gz" if gzip_ok else ""}"'
    version = request.GET.get("v")
    versioned = bool(version) and bool(public) and version == public[:16]
    headers = {
        "ETag": etag,
        "Cache-Control": VERSIONED_CACHE_CONTROL if versioned else f"private, max-age={VOLUME_CACHE_SECONDS}",
        "Vary": "Cookie, Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if _etag_matches(request, etag):
        response = HttpResponseNotModified()
    elif frames:
        response = _frames_response(path, series, frames, gzip_ok)
    elif gzip_ok:  # the stored file as it is: gunicorn sends it with sendfile(2) (wsgi.file_wrapper)
        response = FileResponse(open(path, "rb"), content_type="application/octet-stream")
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = StreamingHttpResponse(_inflated(path), content_type="application/octet-stream")
        response.headers["Content-Length"] = str(series.n_slices * series.rows * series.cols * 2)
    for name, value in headers.items():
        response.headers[name] = value
    return response


def _frames_response(path, series, frames: tuple[int, int], gzip_ok: bool) -> HttpResponse:
    """Frames ``first..last`` of the stored volume: a gzip member cut from the file, or inflated for a client
    that does not take gzip."""
    try:
        index = importer_store.frame_index(path, n_frames=series.n_slices, frame_bytes=series.rows * series.cols * 2)
        body = importer_store.cut_frames(path, index, *frames)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise NotFound(f"the volume of this series cannot be read: {exc}") from None
    response = HttpResponse(body if gzip_ok else gzip.decompress(body), content_type="application/octet-stream")
    if gzip_ok:
        response.headers["Content-Encoding"] = "gzip"
    return response


def _inflated(path):
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def series_meta_data(series: Series, user) -> dict:
    """What the viewer needs to draw a series; boxes and the case pseudonym for coordinators only."""
    meta = series.meta or {}
    data = {
        "id": series.pk,
        "sequence_code": series.sequence_code,
        "plane": series.plane,
        "n_slices": series.n_slices,
        "rows": series.rows,
        "cols": series.cols,
        "volume_url": f"/api/series/{series.pk}/volume",
        "volume_sha256": series.volume_sha256,
        **{
            key: meta.get(key)
            for key in (
                "format",
                "shape",
                "pixel_spacing",
                "slice_thickness",
                "slice_spacing",
                "slice_positions",
                "slice_locations",
                "orientation",
                "temporal_positions",
                "phases",
                "rescale",
                "window",
                "value_range",
                "instance_numbers",
            )
        },
    }
    if is_coordinator(user):
        data["case"] = {"id": series.case_id, "pseudonym": series.case.pseudonym}
        data["mapped_code"], data["mapped_rule"], data["override_code"] = (
            series.mapped_code,
            series.mapped_rule,
            series.override_code,
        )
        data["boxes"] = selectors.boxes_of(series)
    return data


@extend_schema(responses={200: SeriesMetaSerializer, 304: VOLUME_RESPONSES[304], **errors(403, 404)},
               description="Volume metadata for the viewer.")
@api_view(["GET"])
def series_meta(request, pk: int):
    series = _series_or_404(request.user, pk)
    data = SeriesMetaSerializer(series_meta_data(series, request.user)).data
    etag = '"' + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32] + '"'
    if _etag_matches(request, etag):
        response = HttpResponseNotModified()
    else:
        response = Response(data)
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Vary"] = "Cookie"
    return response


def _reason(request) -> str:
    """The correction reason of a DELETE (JSON body {"reason": ...}; not in the URL, which access logs keep)."""
    body = BoxReasonSerializer(data=request.data if hasattr(request.data, "get") else {})
    return body.validated_data.get("reason", "") if body.is_valid() else ""


def _coordinator_series(request, pk: int) -> Series:
    require_role(request.user, COORDINATOR, "tumour boxes are edited by coordinators")
    return _series_or_404(request.user, pk)


@extend_schema(methods=["GET"], responses={200: BoxSerializer(many=True), **errors(403, 404)})
@extend_schema(methods=["POST"], request=BoxWriteSerializer, responses={201: BoxSerializer, **errors(400, 403, 404)})
@extend_schema(methods=["DELETE"], parameters=[OpenApiParameter("slice_index", int, required=True)],
               request=BoxReasonSerializer, responses={204: None, **errors(400, 403, 404)})
@api_view(["GET", "POST", "DELETE"])
def series_boxes(request, pk: int):
    """A series' tumour boxes: list; draw one (replaces the slice's box); delete one (?slice_index=)."""
    series = _coordinator_series(request, pk)
    if request.method == "GET":
        return Response(BoxSerializer(selectors.boxes_of(series), many=True).data)
    if request.method == "DELETE":
        try:
            index = int(request.query_params.get("slice_index", ""))
        except ValueError:
            return Response(
                {"slice_index": ["a whole number is required"]}, status=status.HTTP_400_BAD_REQUEST
            )
        try:
            deleted = services.box_delete(series=series, slice_index=index, user=request.user,
                                          reason=_reason(request))
        except ValidationError as error:
            return Response({"detail": " ".join(error.messages)}, status=status.HTTP_400_BAD_REQUEST)
        if not deleted:
            raise NotFound("no box on this slice")
        return Response(status=status.HTTP_204_NO_CONTENT)
    incoming = BoxWriteSerializer(data=request.data)
    incoming.is_valid(raise_exception=True)
    try:
        box = services.box_save(series=series, user=request.user, **incoming.validated_data)
    except ValidationError as error:
        body = error.message_dict if hasattr(error, "error_dict") else {"detail": " ".join(error.messages)}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return Response(BoxSerializer(box).data, status=status.HTTP_201_CREATED)


@extend_schema(request=BoxReasonSerializer, parameters=[OpenApiParameter("slice_index", int, required=True)],
               responses={201: BoxSerializer(many=True), **errors(400, 403, 404)})
@api_view(["POST"])
def series_boxes_copy(request, pk: int):
    """Copy one slice's box (?slice_index=) to the series' tumour slices without a box; the new boxes."""
    series = _coordinator_series(request, pk)
    try:
        index = int(request.query_params.get("slice_index", ""))
    except ValueError:
        return Response({"slice_index": ["a whole number is required"]}, status=status.HTTP_400_BAD_REQUEST)
    try:
        boxes = services.box_copy_to_tumour_slices(series=series, slice_index=index, user=request.user,
                                                   reason=_reason(request))
    except ValidationError as error:
        body = error.message_dict if hasattr(error, "error_dict") else {"detail": " ".join(error.messages)}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return Response(BoxSerializer(boxes, many=True).data, status=status.HTTP_201_CREATED)


@extend_schema_view(get=extend_schema(
    parameters=[OpenApiParameter("q", str, description="pseudonym contains"),
                OpenApiParameter("truth", str), OpenApiParameter("sequence", str, description="has a series of"),
                OpenApiParameter("institution", str)],
    responses={200: CaseSerializer(many=True), **errors(400, 403)}))
class CaseListApi(ListAPIView):
    """Cases for coordinators and admins (ground truth included); empty for everyone else."""

    serializer_class = CaseSerializer

    def get_queryset(self):
        p = self.request.query_params
        return selectors.case_list(
            self.request.user,
            q=p.get("q", ""),
            truth=p.get("truth", ""),
            sequence=p.get("sequence", ""),
            institution=p.get("institution", ""),
        ).prefetch_related("series")


@extend_schema_view(get=extend_schema(responses={200: CaseSerializer, **errors(403, 404)}))
class CaseDetailApi(RetrieveAPIView):
    serializer_class = CaseSerializer

    def get_queryset(self):
        return selectors.cases_visible_to(self.request.user).prefetch_related("series")
