"""The JSON a reader's browser receives for a case: built here once, used by the page and the API.

Everything in it is chosen field by field (no model serialised whole), so nothing identifying — no
pseudonym, no UID, no series number, no ground truth — and nothing of the AI outside exam 2 can slip in. One
payload serves every task (exam 1, exam 2, the descriptor task); it carries the answer of its own task only
(``"read"`` in an exam, ``"score"`` in the descriptor task), never another task's. Series are named by
assignment-scoped handles and versions (``series_handle``, ``volume_tag``), never by key or content hash, so
the two exams of a case cannot be linked through the payload, the volume URLs or their ETags.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse

from core.constants import SEQUENCE_CODES
from inference import saliency_figure
from reader_study import ai_panel, selectors
from reader_study.hanging import DEFAULT_PROTOCOL
from reader_study.models import DESCRIPTORS, Assignment, DescriptorScore, Read, Study

# What the reader's browser gets instead of a series' database key and content hash: values keyed to the
# assignment (HMAC with the site's secret), so the same series seen in exam 1 and exam 2 (two assignments),
# or by two readers, has nothing in common that would link the two views of a case.
HANDLE_SALT = "reader_study.series-handle"
TAG_SALT = "reader_study.volume-tag"
_ASSIGNMENT_MARK, _HANDLE_MARK = 987654321, "HANDLE"


@functools.lru_cache(maxsize=8)
def _hmac_key(salt: str, secret: str) -> bytes:
    """Django's ``salted_hmac`` key for ``salt``, derived once per process (a payload makes some thirty
    handles and tags, and ``salted_hmac`` derives the key again for each one)."""
    return hashlib.sha1((salt + secret).encode()).digest()  # noqa: S324 - salted_hmac's own derivation


def _salted_hmac(salt: str, value: str) -> str:
    """``salted_hmac(salt, value).hexdigest()``, with its key derived once (same output: tested)."""
    return hmac.new(_hmac_key(salt, settings.SECRET_KEY), value.encode(), hashlib.sha1).hexdigest()


def series_handle(assignment_pk: int, series_pk: int) -> str:
    """The series' name within one assignment: opaque, stable, meaningless outside that assignment."""
    return _salted_hmac(HANDLE_SALT, f"{assignment_pk}:{series_pk}")[:16]


def volume_tag(assignment_pk: int, volume_sha256: str) -> str:
    """The volume's version as one assignment sees it (its ETag and ``?v=``): changes with the content,
    differs between assignments."""
    return _salted_hmac(TAG_SALT, f"{assignment_pk}:{volume_sha256}")[:32]


@functools.lru_cache(maxsize=32)
def _volume_url_template(script_prefix: str, urlconf: str | None, root_urlconf: str) -> str:
    """The volume endpoint's path as a format string, reversed once per URL configuration (a payload holds a
    dozen volume URLs: reversing each costs more than the rest of building them)."""
    url = reverse("reader_study:api_series_volume", args=[_ASSIGNMENT_MARK, _HANDLE_MARK], urlconf=urlconf)
    return url.replace(str(_ASSIGNMENT_MARK), "{assignment}").replace(_HANDLE_MARK, "{handle}")


def volume_url(assignment_pk: int, series: selectors.ViewerSeries) -> str:
    """The readers' volume endpoint for one series of an assignment's case (reader_study serves it only while
    that task is open to the reader). The assignment's version tag rides along, so the browser may cache a
    volume for good yet sees a new one."""
    template = _volume_url_template(get_script_prefix(), get_urlconf(), settings.ROOT_URLCONF)
    url = template.format(assignment=assignment_pk, handle=series_handle(assignment_pk, series.pk))
    return f"{url}?v={volume_tag(assignment_pk, series.volume_sha256)[:16]}" if series.volume_sha256 else url


def series_payload(assignment_pk: int, series: selectors.ViewerSeries) -> dict:
    """What the viewer needs to show a series: shape, geometry, rescale, default window, where to load it."""
    meta = series.meta or {}
    code = series.sequence_code
    return {
        "id": series_handle(assignment_pk, series.pk),
        "code": code if code in SEQUENCE_CODES else "other",
        "plane": series.plane,
        "n_slices": series.n_slices, "rows": series.rows, "cols": series.cols,
        "pixel_spacing": meta.get("pixel_spacing") or [1.0, 1.0],
        "slice_positions": meta.get("slice_positions") or [],
        "orientation": meta.get("orientation") or [1, 0, 0, 0, 1, 0],
        "rescale": meta.get("rescale") or {"slope": 1.0, "intercept": 0.0},
        "window": meta.get("window") or None,
        "value_range": meta.get("value_range") or None,
        "temporal_positions": meta.get("temporal_positions") or None,
        "slice_thickness": meta.get("slice_thickness") or None,
        "volume_url": volume_url(assignment_pk, series),
    }


def case_images_payload(assignment_pk: int, series: list[selectors.ViewerSeries],
                        protocol=DEFAULT_PROTOCOL) -> dict:
    """The case's series and the ones the first viewports open by the study's hanging ``protocol``
    (``reader_study.hanging``); ``preload``: the first viewport's opening slice (the middle one) as the viewer's
    loader asks for it (``?slices=m-m``, static/js/volume_loader.js), so that the browser fetches it while the page's
    scripts load. Not the whole volume: that would share the line with the opening slices
    (docs/reader_study_loading.md)."""
    shown = selectors.default_viewports(series, protocol)
    first = next((s for s in series if shown and s.pk == shown[0]), None)
    return {"series": [series_payload(assignment_pk, s) for s in series],
            "default_series": [series_handle(assignment_pk, pk) for pk in shown],
            "preload": opening_slice_url(assignment_pk, first) if first else None}


def opening_slice_url(assignment_pk: int, series: selectors.ViewerSeries) -> str:
    """The URL of the slice a viewport opens a series on, exactly as the loader builds it (``rangeUrl``)."""
    url, middle = volume_url(assignment_pk, series), series.n_slices // 2
    return f"{url}{'&' if '?' in url else '?'}slices={middle}-{middle}"


def _prefetch_urls(assignment_pk: int | None, series: list[selectors.ViewerSeries],
                   protocol=DEFAULT_PROTOCOL) -> list[str]:
    """The next case's first series, fetched in idle time so that "submit and next" shows images at once: first
    each default viewport's opening slice, exactly as the loader will ask for it (the next page's first image
    comes from the HTTP cache, not from a whole volume read there up to its middle), then the whole volumes."""
    if assignment_pk is None:
        return []
    by_pk = {s.pk: s for s in series}
    shown = [by_pk[pk] for pk in selectors.default_viewports(series, protocol)]
    return ([opening_slice_url(assignment_pk, s) for s in shown]
            + [volume_url(assignment_pk, s) for s in shown])


def opening_slice_urls(assignment: Assignment | None) -> list[str]:
    """The opening slices of a case's default viewports (as the loader asks for them), for a page that leads to
    its reading page (the worklist, the study's home) to prefetch in idle time: the reading page's first image
    then comes from the HTTP cache, as the next case's does after "submit and next". [] for no case."""
    if assignment is None:
        return []
    protocol = assignment.study.hanging_protocol or DEFAULT_PROTOCOL
    series = selectors.cases_series([assignment.case_id], meta_for=[]).get(assignment.case_id, [])
    by_pk = {s.pk: s for s in series}
    return [opening_slice_url(assignment.pk, by_pk[pk]) for pk in selectors.default_viewports(series, protocol)]


def ai_payload(assignment: Assignment) -> dict | None:
    """The AI panel's content for exam 2 (``reader_study.ai_panel``); None in exam 1 (the selector never returns
    a result there)."""
    found = selectors.ai_panel_for(assignment)
    if found is None:
        return None
    result = found.result
    return ai_panel.panel(likelihood=result.likelihood, per_sequence=result.per_sequence or {},
                          subset=result.subset or [], n_ensembles=result.n_ensembles,
                          thresholds=found.thresholds, nested=found.nested, in_sample=found.in_sample)


def heat_maps_payload(assignment: Assignment, ai: dict | None) -> dict | None:
    """Exam 2's heat-maps (issue 18): which series have them, where each is fetched, whether the overlay starts
    on, and the colour legend. None where the study does not offer them, the case has no AI result (``ai``,
    the panel) or no maps on the sequences its likelihood used; never called in exam 1 (the key does not exist
    there, as ``ai``)."""
    if ai is None:
        return None
    series = selectors.heat_map_series(assignment, ai["subset"])
    if not series:
        return None
    return {"default_on": assignment.study.heat_maps == Study.HeatMaps.ON,
            "series": {series_handle(assignment.pk, pk): heat_map_url(assignment.pk, pk) for pk in sorted(series)},
            "legend": saliency_figure.legend_stops(),
            "what": HEAT_MAP_WHAT}


HEAT_MAP_WHAT = ("Where on the tumour slices the ensemble's models saw evidence for sarcoma (Grad-CAM, their mean), "
                 "on the sequences its likelihood used: red the most, blue a little, no colour none. One scale for "
                 "every case of the study. It is not an outline of the tumour, and it shows no evidence against "
                 "sarcoma.")


def heat_map_url(assignment_pk: int, series_pk: int) -> str:
    return reverse("reader_study:api_series_heat_map", args=[assignment_pk, series_handle(assignment_pk, series_pk)])


def heat_map_series_payload(maps) -> dict:
    """One series' maps (``inference.saliency_store.SeriesMaps``) as the viewer draws them: per slice, the crop's
    square on the slice and the map as a grey PNG (base64) of the crop's size, and the colour table (value
    0..255 → RGB)."""
    return {"size": int(maps.maps.shape[1]), "colormap": saliency_figure.lut().tolist(),
            "slices": [{"slice": int(k), "window": [int(v) for v in window], "map": saliency_figure.png_base64(heat)}
                       for k, window, heat in zip(maps.slice_no, maps.window, maps.maps, strict=True)]}


@dataclass(frozen=True)
class Routes:
    """The URL names of a task's pages and reading API. The descriptor task keeps the URLs it always had; they
    lead to the same views as the exams'."""

    page: str
    worklist: str
    submit: str
    time: str


EXAM_ROUTES = Routes(page="reader_study:reading", worklist="reader_study:worklist",
                     submit="reader_study:api_read_submit", time="reader_study:api_active_time")
DESCRIPTOR_ROUTES = Routes(page="reader_study:descriptor_scoring", worklist="reader_study:descriptor_worklist",
                           submit="reader_study:api_descriptor_score", time="reader_study:api_descriptor_time")


def routes(exam: int) -> Routes:
    return DESCRIPTOR_ROUTES if exam == DESCRIPTORS else EXAM_ROUTES


def worklist_url(study_id: int, exam: int) -> str:
    return reverse(routes(exam).worklist, kwargs={"pk": study_id, "exam": exam})


def answer_key(exam: int) -> str:
    """The payload key of a task's answer: "read" in an exam, "score" in the descriptor task."""
    return "score" if exam == DESCRIPTORS else "read"


def answer_json(answer: Read | DescriptorScore | None) -> dict | None:
    """A reader's own answer as their browser sees it (and as the submit API returns it)."""
    if answer is None:
        return None
    if isinstance(answer, DescriptorScore):
        return {"degeneration": answer.degeneration, "irregular_margin": answer.irregular_margin}
    return {"call": answer.call, "confidence": answer.confidence, "note": answer.note,
            "revision": answer.revision}


def reading_series(assignment: Assignment, state: selectors.ReadingState) -> dict[int, list]:
    """The series of the case and of the next unread one (its volume URLs are prefetched), in one query."""
    return selectors.cases_series([assignment.case_id, state.next_unread_case], meta_for=[assignment.case_id])


def reading_payload(assignment: Assignment, state: selectors.ReadingState | None = None,
                    series: dict[int, list] | None = None) -> dict:
    """A reader's view of one case of one task. The keys "ai" and "heat_maps" exist only in exam 2.

    ``state`` and ``series``: the case's ``selectors.reading_state`` and ``reading_series`` where the caller
    has them for this request. The number of queries does not grow with the worklist: its rows come in one
    query, both cases' series in one.
    """
    state = selectors.reading_state(assignment) if state is None else state
    status, upcoming_case = state.status, state.next_unread_case
    series = reading_series(assignment, state) if series is None else series
    names = routes(assignment.exam)
    protocol = assignment.study.hanging_protocol or DEFAULT_PROTOCOL
    payload = {
        "assignment": assignment.pk, "exam": assignment.exam, "display_code": assignment.display_code,
        "position": assignment.position + 1, "total": status.total, "done": status.done,
        "study": {"id": assignment.study_id, "name": assignment.study.name},
        **case_images_payload(assignment.pk, series.get(assignment.case_id, []), protocol),
        answer_key(assignment.exam): answer_json(assignment.answer),
        "previous": state.previous, "following": state.following,
        "next_unread": state.next_unread,
        "prefetch": _prefetch_urls(state.next_unread, series.get(upcoming_case, []), protocol),
        "urls": {
            "submit": reverse(names.submit, args=[assignment.pk]),
            "time": reverse(names.time, args=[assignment.pk]),
            "worklist": worklist_url(assignment.study_id, assignment.exam),
            "page": reverse(names.page, args=[0]).replace("/0/", "/{id}/"),
        },
    }
    if assignment.exam == 2:
        payload["ai"] = ai_payload(assignment)
        payload["heat_maps"] = heat_maps_payload(assignment, payload["ai"])
    return payload
