"""The reading room's warm-up (issue 15, item 10): the pages that lead to a reading page (the worklist, the
study's home) prefetch the opening slices of the case their main button opens, and the reading page prefetches
the next case's opening slices before its whole series, all as the viewer's loader asks for them. Timings are in
benchmarks/progressive_loading.py. SYNTHETIC cases only."""

import json
import re

import pytest
from django.urls import reverse

from factories_reader_study import case_with_series, open_study
from reader_study import payloads, selectors, services

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(coordinator, reader):
    cases = [case_with_series(codes=("T2axi", "T2sag", "DWI", "ADC"), seed=s) for s in (1, 10, 20)]
    return open_study(coordinator=coordinator, readers=[reader], cases=cases)


def opening_urls(assignment) -> list[str]:
    """The opening slices of a case as the reading page's own payload names them (its loader's requests)."""
    payload = payloads.reading_payload(assignment)
    by_id = {s["id"]: s for s in payload["series"]}
    return [f"{by_id[h]['volume_url']}&slices={by_id[h]['n_slices'] // 2}-{by_id[h]['n_slices'] // 2}"
            for h in payload["default_series"]]


def warm_up_of(html: str) -> list[str] | None:
    found = re.search(r'<script id="warm-up-urls" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1)) if found else None


def test_the_worklist_and_the_study_home_prefetch_the_opening_slices_of_the_case_they_resume(
        client, study, reader):
    items = list(selectors.worklist(study, reader, 1))
    services.read_submit(reader=reader, assignment=items[0], call="leiomyoma", confidence=3)
    resumed = selectors.assignment_for_reader(reader, items[1].pk)     # where the reader left off
    client.force_login(reader)
    expected = opening_urls(resumed)
    assert len(expected) == 3 and all(f"/api/reading/{resumed.pk}/series/" in u for u in expected)
    for url in (reverse("reader_study:worklist", kwargs={"pk": study.pk, "exam": 1}),
                reverse("reader_study:study_home", kwargs={"pk": study.pk})):
        html = client.get(url).content.decode()
        assert warm_up_of(html) == expected, url
        assert "reader_study/warm_up." in html and 'rel="prefetch" as="script"' in html
        assert client.get(expected[0]).status_code == 200       # each one a request the reader may make


def test_nothing_is_warmed_when_nothing_is_left_to_read_or_the_worklist_is_read_only(client, study, reader):
    for item in selectors.worklist(study, reader, 1):
        services.read_submit(reader=reader, assignment=item, call="leiomyoma", confidence=3)
    client.force_login(reader)
    worklist = reverse("reader_study:worklist", kwargs={"pk": study.pk, "exam": 1})
    assert warm_up_of(client.get(worklist).content.decode()) is None             # all answered
    services.exam_finish(reader=reader, study=study, exam=1)
    assert warm_up_of(client.get(worklist).content.decode()) is None             # read-only now
    home = client.get(reverse("reader_study:study_home", kwargs={"pk": study.pk})).content.decode()
    assert warm_up_of(home) is None                                              # exam 2 waits for the washout


def test_the_reading_page_prefetches_the_next_cases_opening_slices_before_its_whole_series(study, reader):
    items = list(selectors.worklist(study, reader, 1))
    payload = payloads.reading_payload(selectors.assignment_for_reader(reader, items[0].pk))
    upcoming = selectors.assignment_for_reader(reader, payload["next_unread"])
    opening = opening_urls(upcoming)
    assert payload["prefetch"][:3] == opening
    assert payload["prefetch"][3:] == [u.rsplit("&slices=", 1)[0] for u in opening]   # then the whole volumes
