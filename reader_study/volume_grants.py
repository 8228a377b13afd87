"""Volume grants: a reader's permission to load one assignment's images, remembered for one minute at most.

Why: the viewer asks for three to six volumes per case, and each request ran the whole check again (the
assignment with the Reader role, the exam's status, the case's series): three queries and about half of the
endpoint's time, for an answer that cannot change between two volumes of the same case unless the exam is
finished or the study closed (docs/production.md, *Read path*). The first volume request of an assignment (or
a handle the grant does not know) runs the full check and stores what it allowed: the case's viewable series
by handle, as the plain rows `imaging.api.volume_response` serves. The reading page and the case API, which
check the same rule before they show a case, store the grant as they open it, so that a case's volumes
normally find it already there. Later requests of the same reader for the same assignment read that grant
from the shared cache and ask the database nothing.

The same rules as the cached user (``accounts.backends``), and only where that cache is shared (``USER_CACHE``):

* a grant lives ``GRANT_SECONDS`` at most, and is keyed to the reader *and* the assignment (handles and
  tags are per assignment, so a grant never links the two exams of a case);
* the Reader role is still checked on every request, from the cached user (a role taken away is seen by
  the next request);
* what ends an exam for a reader revokes the grants at once, after the change is committed: finishing the
  exam (``services.exam_finish``) and closing the study (``services.study_close``); so does a correction of
  the case (``imaging.services.case_correct``: a series taken off it), through imaging's stale-marker
  registry (``revoke_corrected_cases``). A revocation writes a *revoked* marker for the minute instead of
  deleting, and grants are stored with ``cache.add``, so a request that checked just before the change
  committed cannot put its grant back over the marker. Only a change made by SQL by hand, or a revocation
  that could not reach the cache, waits for the minute to pass;
* the cache is a speed-up, never a dependency: an unreachable cache reads as no grant (the full check runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from imaging.api import VOLUME_FIELDS
from reader_study import payloads, selectors
from reader_study.models import Assignment

GRANT_SECONDS = 60
_KEY = "reader_study.volume_grant.v1.{}.{}"
REVOKED: dict[str, dict] = {}       # the marker: a grant of no series (every handle takes the full check)
log = logging.getLogger(__name__)


def enabled() -> bool:
    return bool(getattr(settings, "USER_CACHE", False))


def grant_key(reader_id: int, assignment_pk: int) -> str:
    return _KEY.format(reader_id, assignment_pk)


def grant_read(reader_id: int, assignment_pk: int) -> dict[str, dict] | None:
    """The series the reader may load for this assignment, by handle; None where no grant is held, and
    ``REVOKED`` (empty) for the minute after a revocation."""
    if not enabled():
        return None
    try:
        return cache.get(grant_key(reader_id, assignment_pk))
    except Exception as exc:  # noqa: BLE001 - any cache failure: the full check runs
        log.warning("volume grant unreadable (%s): checking the permission in the database", type(exc).__name__)
        return None


def grant_write(reader_id: int, assignment_pk: int, series_by_handle: dict[str, dict]) -> None:
    if not enabled():
        return
    try:   # add, never set: a grant never replaces another one, nor a revocation's marker
        cache.add(grant_key(reader_id, assignment_pk), series_by_handle, GRANT_SECONDS)
    except Exception:  # noqa: BLE001, S110 - not remembered this time; the next request checks again
        pass


def grant_case(reader_id: int, assignment, series: list[selectors.ViewerSeries] | None = None) -> dict[str, dict]:
    """Store and return the grant of ``assignment``'s case: its viewable series by handle. Only after the full
    check: the assignment is the reader's, and its task is open to them. ``series``: the case's viewable
    series where the caller has read them already (the page and the case API: their payload's), else read
    here (one query)."""
    if series is None:
        series = selectors.cases_series([assignment.case_id], meta_for=[]).get(assignment.case_id, [])
    granted = {payloads.series_handle(assignment.pk, s.pk): {k: getattr(s, k) for k in VOLUME_FIELDS}
               for s in series}
    grant_write(reader_id, assignment.pk, granted)
    return granted


def grant_opened_case(reader_id: int, assignment, series: list[selectors.ViewerSeries]) -> None:
    """The page or the case API has just opened the case to its reader: grant its volumes ahead of the
    viewer's requests, from the series its payload read (no query; one ``cache.add``, which keeps a grant
    already held, or a revocation's marker). Nothing where grants are off."""
    if enabled():
        grant_case(reader_id, assignment, series)


def grants_revoke(pairs: Iterable[tuple[int, int]]) -> None:
    """Replace the grants of these (reader id, assignment pk) pairs by the ``REVOKED`` marker for the minute."""
    if not enabled():
        return
    keys = [grant_key(reader_id, pk) for reader_id, pk in pairs]
    if not keys:
        return
    try:
        cache.set_many(dict.fromkeys(keys, REVOKED), GRANT_SECONDS)
    except Exception as exc:  # noqa: BLE001 - they expire by themselves
        log.warning("%d volume grant(s) not revoked (%s); they expire within %s s", len(keys),
                    type(exc).__name__, GRANT_SECONDS)


def revoke_on_commit(assignments) -> None:
    """Once the current transaction commits, revoke the grants of these assignments (a queryset): their task
    is no longer open, or their case changed."""
    if enabled():
        pairs = list(assignments.values_list("reader_id", "pk"))
        transaction.on_commit(lambda: grants_revoke(pairs))


def revoke_corrected_cases(*, case_ids, cohort_ids, reason: str, at) -> list[str]:
    """imaging's stale marker (``imaging.frozen``): a corrected case (a series taken off it) needs the full
    check again for every reader. Marks nothing stale itself: returns []."""
    revoke_on_commit(Assignment.objects.filter(case_id__in=case_ids))
    return []
