"""Issue 15, deliverable 12: the sequence-mapping page has its rules editor at the top, and its report is filterable
(case or description, code used, plane, rule, overridden) and paginated with the filters kept. SYNTHETIC series."""

import itertools
import re

import pytest

from factories_imaging import make_synthetic_case
from imaging import views

pytestmark = pytest.mark.django_db

_uid = itertools.count(1)


def _series(case, *, description: str, code: str = "T2", rule: str = "t2_axial", plane: str = "axial",
            override: str = "", number: int = 1):
    from imaging.models import Series

    return Series.objects.create(case=case, series_uid=f"2.25.{next(_uid)}", series_number=number, mapped_code=code,
                                 mapped_rule=rule, override_code=override, plane=plane,
                                 attributes={"series_description": description})


@pytest.fixture
def report(client, coordinator):
    """Three SYNTHETIC cases: an axial T2, a sagittal T2, an unmatched localiser, an overridden DWI."""
    first, second, third = (make_synthetic_case(prefix="C-MAP") for _ in range(3))
    _series(first, description="t2 tse ax")
    _series(second, description="t2 tse sag", plane="sagittal", rule="t2_sagittal")
    _series(third, description="localizer", code="unused", rule="", plane="coronal")
    _series(third, description="ep2d diff b800", code="DWI", rule="dwi", override="ADC", number=2)
    client.force_login(coordinator)

    def get(query: str = "") -> str:
        response = client.get(f"/imaging/mapping/{query}")
        assert response.status_code == 200
        return response.content.decode()
    return get


def _descriptions(page: str) -> list[str]:
    table = page[page.index('id="mapping-table"'):page.index("</table>", page.index('id="mapping-table"'))]
    return re.findall(r"<td>([^<]*)</td>\s*<td>(?:axial|sagittal|coronal|—)</td>", table)


def test_the_rules_editor_comes_before_the_report(report):
    page = report()
    assert page.index('id="rules-editor"') < page.index('id="mapping-report"') < page.index('id="mapping-table"')
    assert '<textarea name="rules"' in page and "Validate, save and activate" in page


def test_the_report_filters_by_words_in_the_case_or_description(report):
    assert _descriptions(report("?q=TSE")) == ["t2 tse ax", "t2 tse sag"]
    assert "2 series match" in report("?q=tse")


def test_the_report_filters_by_plane_rule_code_and_override(report):
    assert _descriptions(report("?plane=sagittal")) == ["t2 tse sag"]
    assert _descriptions(report("?rule=none")) == ["localizer"]
    assert _descriptions(report("?rule=t2_axial")) == ["t2 tse ax"]
    assert _descriptions(report("?code=ADC")) == ["ep2d diff b800"]  # the code used: the override
    assert _descriptions(report("?code=DWI")) == []  # the rule's code, overridden: not the code used
    assert _descriptions(report("?overridden=yes")) == ["ep2d diff b800"]
    assert "No series match these filters." in report("?q=nothing-like-this")


def test_the_filter_form_shows_the_filters_in_use_and_a_way_to_clear_them(report):
    page = report("?plane=sagittal&q=tse")
    assert '<option value="sagittal" selected>' in page and 'value="tse"' in page
    assert '<a href="/imaging/mapping/">clear</a>' in page
    assert '<a href="/imaging/mapping/">clear</a>' not in report()


def test_the_report_is_paginated_and_its_page_links_keep_the_filters(report, monkeypatch):
    monkeypatch.setattr(views, "MAPPING_PAGE_SIZE", 1)
    page = report("?q=tse")
    assert "page 1 of 2" in page and "2 series match; 1–1 shown" in page
    assert 'href="?q=tse&amp;page=2">next →</a>' in page
    assert _descriptions(report("?q=tse&page=2")) == ["t2 tse sag"]
    assert 'href="?page=2">next →</a>' in report()


def test_a_refused_rule_set_keeps_its_text_in_the_editor_at_the_top(client, coordinator):
    client.force_login(coordinator)
    response = client.post("/imaging/mapping/rules/", {"name": "site", "rules": "[{\"id\": 1}]"})
    page = response.content.decode()
    assert response.status_code == 400
    assert page.index('id="rule-errors"') < page.index('id="mapping-report"')
    assert "[{&quot;id&quot;: 1}]" in page


def test_the_mapping_page_is_for_coordinators(client, reader):
    client.force_login(reader)
    assert client.get("/imaging/mapping/").status_code == 403
