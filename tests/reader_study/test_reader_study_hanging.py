"""Hanging protocols (issue 15, item 9): the coordinator sets per study which sequence opens in which viewport,
the payload applies it to every case, and the localizer never reaches a reader. SYNTHETIC cases only."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from core.constants import UNUSED_SEQUENCE
from factories_reader_study import case_with_series, open_study, pattern_stack, write_series
from reader_study import hanging, payloads, selectors, services
from reader_study.models import Study, StudyEvent


# --- the protocol itself (no database) -----------------------------------------------------------------
def test_a_protocol_is_read_from_its_text_with_or_and_commas_in_any_case():
    assert hanging.parse_protocol("t2SAG | T2axi | ADC or dwi") == [["T2sag"], ["T2axi"], ["ADC", "DWI"]]
    assert hanging.parse_protocol("T2cor, fsT1CEcor | DWI") == [["T2cor", "fsT1CEcor"], ["DWI"]]
    assert hanging.format_protocol(hanging.DEFAULT_PROTOCOL) == "T2sag | T2axi | ADC or DWI"
    assert hanging.parse_protocol([["ADC", "DWI"]]) == [["ADC", "DWI"]]


@pytest.mark.parametrize(("text", "message"), [
    ("T2sag | T3axi", "viewport 2: 'T3axi' is not a sequence code"),
    ("T2sag | | DWI", "viewport 2 names no sequence"),
    ("T2sag | T2axi | DWI | ADC | T1axi", "5 viewports: the viewer shows at most 4"),
    ("", "at least one viewport"),
    ("unused", "'unused' is not a sequence code"),
])
def test_a_bad_protocol_is_refused_naming_the_viewport_and_the_code(text, message):
    with pytest.raises(ValueError, match=message):
        hanging.parse_protocol(text)


def test_each_viewport_opens_the_first_code_the_case_has_and_a_missing_one_takes_a_leftover():
    series = [(1, "ADC"), (2, "DWI"), (3, "T1axi"), (4, "T2axi"), (5, UNUSED_SEQUENCE)]
    assert hanging.choose_viewports(series, [["T2sag"], ["T2axi"], ["ADC", "DWI"]]) == [2, 4, 1]
    assert hanging.choose_viewports(series, [["DWI", "ADC"], ["ADC", "DWI"]]) == [2, 1]
    assert hanging.choose_viewports([(5, UNUSED_SEQUENCE)], [["T2sag"]]) == []     # never fills with "unused"
    assert hanging.choose_viewports([(4, "T2axi")], [["T2axi"], ["T2sag"], ["DWI"]]) == [4]


# --- the study's setting ------------------------------------------------------------------------------
@pytest.fixture
def study(coordinator, reader):
    cases = [case_with_series(codes=("T2axi", "T2sag", "DWI", "ADC"), seed=1),
             case_with_series(codes=("T2axi", "DWI", "T1axi"), seed=20)]
    return open_study(coordinator=coordinator, readers=[reader], cases=cases)


@pytest.mark.django_db
def test_a_new_study_hangs_t2sag_t2axi_then_adc_or_dwi(study):
    assert study.hanging_protocol == [["T2sag"], ["T2axi"], ["ADC", "DWI"]]


@pytest.mark.django_db
def test_every_case_of_every_reader_opens_by_the_studys_protocol(study, reader, coordinator):
    services.study_hanging_set(study=study, protocol="DWI | T2axi or T2sag | T1axi", by=coordinator)
    opened = []
    for a in selectors.worklist(study, reader, 1):
        payload = payloads.reading_payload(selectors.assignment_for_reader(reader, a.pk))
        code_of = {s["id"]: s["code"] for s in payload["series"]}
        codes = [code_of[h] for h in payload["default_series"]]
        opened.append(codes)
        first = next(s for s in payload["series"] if s["id"] == payload["default_series"][0])
        middle = first["n_slices"] // 2          # the first viewport's opening slice, as the loader asks for it
        assert payload["preload"] == f"{first['volume_url']}&slices={middle}-{middle}"
        assert codes[0] == "DWI"
    assert sorted(opened) == [["DWI", "T2axi", "ADC"], ["DWI", "T2axi", "T1axi"]]   # no T1axi: a leftover


@pytest.mark.django_db
def test_setting_the_protocol_is_audited_once_and_refused_when_bad_closed_or_not_a_coordinator(
        study, coordinator, reader):
    services.study_hanging_set(study=study, protocol="T2axi | DWI", by=coordinator)
    services.study_hanging_set(study=study, protocol=[["T2axi"], ["DWI"]], by=coordinator)   # the same: no-op
    events = StudyEvent.objects.filter(study=study, action="hanging_protocol_set")
    assert [e.detail for e in events] == [{"before": "T2sag | T2axi | ADC or DWI", "after": "T2axi | DWI"}]
    with pytest.raises(ValidationError) as bad:
        services.study_hanging_set(study=study, protocol="T2axi | XYZ", by=coordinator)
    assert "'XYZ' is not a sequence code" in bad.value.message_dict["hanging_protocol"][0]
    with pytest.raises(PermissionDenied):
        services.study_hanging_set(study=study, protocol="DWI", by=reader)
    services.study_close(study=study, by=coordinator)
    with pytest.raises(ValidationError, match="closed"):
        services.study_hanging_set(study=study, protocol="DWI", by=coordinator)
    assert Study.objects.get(pk=study.pk).hanging_protocol == [["T2axi"], ["DWI"]]


@pytest.mark.django_db
def test_the_coordinator_sets_the_protocol_on_the_create_form_and_the_study_page(client, coordinator, study):
    client.force_login(coordinator)
    page = client.get(f"/coordination/studies/{study.pk}/").content.decode()
    assert 'id="hanging-now">T2sag | T2axi | ADC or DWI<' in page
    response = client.post(f"/coordination/studies/{study.pk}/hanging-protocol/",
                           {"hanging_protocol": "ADC or DWI | T2sag"}, follow=True)
    assert "Hanging protocol: ADC or DWI | T2sag." in response.content.decode()
    assert Study.objects.get(pk=study.pk).hanging_protocol == [["ADC", "DWI"], ["T2sag"]]
    response = client.post(f"/coordination/studies/{study.pk}/hanging-protocol/",
                           {"hanging_protocol": "T2sag | T9"}, follow=True)
    assert "viewport 2: &#x27;T9&#x27; is not a sequence code" in response.content.decode()
    case = case_with_series(seed=5)
    form = client.get("/coordination/studies/new/").content.decode()
    assert 'name="hanging_protocol"' in form and 'value="T2sag | T2axi | ADC or DWI"' in form
    response = client.post("/coordination/studies/new/", {"name": "Hung (synthetic)", "cases": [case.pk],
                                                          "washout_days": 28, "descriptor_k": 1,
                                                          "hanging_protocol": "T2axi | T2ax"})
    assert response.status_code == 200 and "&#x27;T2ax&#x27; is not a sequence code" in response.content.decode()
    client.post("/coordination/studies/new/", {"name": "Hung (synthetic)", "cases": [case.pk], "washout_days": 28,
                                               "descriptor_k": 1, "hanging_protocol": "T2axi | dwi"})
    assert Study.objects.get(name="Hung (synthetic)").hanging_protocol == [["T2axi"], ["DWI"]]


# --- the localizer ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_localizer_reaches_neither_the_readers_payload_nor_the_volume_endpoint(client, coordinator, reader):
    case = case_with_series(codes=("T2axi", "DWI"), seed=2)
    scout = write_series(case, UNUSED_SEQUENCE, pattern_stack(3, 32, 9), number=99)
    scout.mapped_rule = selectors.LOCALIZER_RULE
    scout.save(update_fields=["mapped_rule"])
    other = write_series(case, UNUSED_SEQUENCE, pattern_stack(4, 32, 8), number=98)   # unused, not a scout
    study = open_study(coordinator=coordinator, readers=[reader], cases=[case])
    a = selectors.worklist(study, reader, 1).first()
    client.force_login(reader)
    payload = client.get(f"/api/reading/{a.pk}/").json()
    handles = {s["id"] for s in payload["series"]}
    assert payloads.series_handle(a.pk, scout.pk) not in handles
    assert payloads.series_handle(a.pk, other.pk) in handles
    assert len(payload["series"]) == 3 and selectors.LOCALIZER_RULE not in str(payload)
    scout_url = f"/api/reading/{a.pk}/series/{payloads.series_handle(a.pk, scout.pk)}/volume"
    assert client.get(scout_url).status_code == 404
    assert client.get(f"/api/reading/{a.pk}/series/{payloads.series_handle(a.pk, other.pk)}/volume"
                      ).status_code == 200
    scout.override_code = "T2cor"                 # a coordinator says it is a sequence after all: it shows
    scout.save(update_fields=["override_code"])
    assert payloads.series_handle(a.pk, scout.pk) in {s["id"] for s in client.get(f"/api/reading/{a.pk}/").json()
                                                      ["series"]}


@pytest.mark.django_db
def test_the_coordinator_api_shows_and_sets_the_protocol(client, coordinator, study):
    client.force_login(coordinator)
    [listed] = [s for s in client.get("/api/studies/").json() if s["id"] == study.pk]
    assert listed["hanging_protocol"] == "T2sag | T2axi | ADC or DWI"
    response = client.post(f"/api/studies/{study.pk}/hanging-protocol/", {"hanging_protocol": "dwi | T2axi"},
                           content_type="application/json")
    assert response.status_code == 200 and response.json()["hanging_protocol"] == "DWI | T2axi"
    bad = client.post(f"/api/studies/{study.pk}/hanging-protocol/", {"hanging_protocol": "T2sag | T9"},
                      content_type="application/json")
    assert bad.status_code == 400 and "'T9' is not a sequence code" in str(bad.json())
    assert Study.objects.get(pk=study.pk).hanging_protocol == [["DWI"], ["T2axi"]]
