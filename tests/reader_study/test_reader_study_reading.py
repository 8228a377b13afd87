"""The reading page and its API: nothing of the AI in exam 1, the AI panel in exam 2, nothing identifying."""

import gzip
import json

import numpy as np
import pytest
from django.test import Client

from core.constants import SARCOMA
from factories_reader_study import answer_all, move_washout, opened_ago, pattern_stack
from reader_study import selectors, services
from reader_study.models import Read
from reader_study.serializers import ReadingPayloadSerializer

pytestmark = pytest.mark.django_db

AI_MARKERS = ("ai-panel", "likelihood", "AI second opinion", "per_sequence", '"ai"', "in_subset", "ensemble")


def _exam2_open(study, reader, coordinator):
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=29)


def _ai_values(setup) -> list[str]:
    """Every AI number of the study, as it would be printed (e.g. 87.5, 83.3, 89.6)."""
    values = set()
    for r in setup["evaluation"].case_results.all():
        values |= {f"{r.likelihood:.1f}", *(f"{v:.1f}" for v in r.per_sequence.values())}
    return sorted(values)


def _identifying(setup) -> list[str]:
    cases = setup["cases"]
    return [c.pseudonym for c in cases] + [c.source_key_hash for c in cases] + \
        [s.series_uid for c in cases for s in c.series.all()]


def test_exam1_page_and_api_carry_nothing_of_the_ai(client, study_setup, reader):
    client.force_login(reader)
    for a in selectors.worklist(study_setup["study"], reader, 1):
        html = client.get(f"/reading/{a.pk}/").content.decode()
        api = client.get(f"/api/reading/{a.pk}/")
        assert api.status_code == 200 and "ai" not in api.json()
        for text in (html, api.content.decode()):
            for marker in AI_MARKERS:
                assert marker not in text, marker
            for value in _ai_values(study_setup):
                assert value not in text, value
        submit = client.post(f"/api/reading/{a.pk}/read/", {"call": SARCOMA, "confidence": 70},
                             content_type="application/json")
        assert submit.status_code == 200
        assert not set(submit.json()) & {"ai", "likelihood", "ai_likelihood_shown"}
    for url in (f"/api/reading/studies/{study_setup['study'].pk}/", "/api/reading/studies/",
                f"/api/reading/studies/{study_setup['study'].pk}/exams/1/"):
        assert "likelihood" not in client.get(url).content.decode()


def test_exam2_shows_the_ai_panel_with_likelihood_per_sequence_and_subset(client, study_setup, reader,
                                                                         coordinator):
    study = study_setup["study"]
    _exam2_open(study, reader, coordinator)
    client.force_login(reader)
    a = selectors.worklist(study, reader, 2).first()
    result = study_setup["evaluation"].case_results.get(case=a.case)
    html = client.get(f"/reading/{a.pk}/").content.decode()
    assert 'id="ai-panel"' in html and f"{round(result.likelihood)} %" in html
    ai = client.get(f"/api/reading/{a.pk}/").json()["ai"]
    assert ai["likelihood"] == round(result.likelihood) and ai["subset"] == ["DWI", "T2sag"]   # the paper's order
    assert ai["n_sarcoma"] == round(result.likelihood * 24 / 100) and ai["n_ensembles"] == 24
    assert f"{ai['n_sarcoma']} of 24</strong> ensembles call sarcoma" in html
    assert [(row["code"], row["percent"]) for row in ai["used"]] == [
        (code, round(result.per_sequence[code])) for code in ("DWI", "T2sag")]
    assert ai["missing"] == [] and "T2axi" not in [row["code"] for row in ai["used"]]   # not in the set
    assert ai["how_combined"]


def test_exam2_without_an_ai_result_says_so(client, study_setup, reader, coordinator):
    study = study_setup["study"]
    _exam2_open(study, reader, coordinator)
    a = selectors.worklist(study, reader, 2).first()
    study_setup["evaluation"].case_results.filter(case=a.case).delete()
    client.force_login(reader)
    assert "No AI result for this case" in client.get(f"/reading/{a.pk}/").content.decode()
    assert client.get(f"/api/reading/{a.pk}/").json()["ai"] is None


def test_no_identifying_value_or_truth_reaches_the_reader(client, study_setup, reader, coordinator):
    study = study_setup["study"]
    client.force_login(reader)
    pages = ["/studies/", f"/studies/{study.pk}/", f"/studies/{study.pk}/exam/1/", "/api/reading/studies/"]
    for a in selectors.worklist(study, reader, 1):
        pages += [f"/reading/{a.pk}/", f"/api/reading/{a.pk}/"]
    texts = [client.get(url).content.decode() for url in pages]
    for text in texts:
        for value in _identifying(study_setup):
            assert value not in text
        assert '"truth"' not in text and "leiomyoma_cases" not in text
        assert "/ 3 scored" not in text               # the number of leiomyomas would give the prevalence
    payload = client.get(f"/api/reading/{selectors.worklist(study, reader, 1).first().pk}/").json()
    allowed = {"id", "code", "plane", "n_slices", "rows", "cols", "pixel_spacing", "slice_positions",
               "orientation", "rescale", "window", "value_range", "temporal_positions", "slice_thickness", "volume_url"}
    assert all(set(s) == allowed for s in payload["series"])


def test_reading_payload_lists_series_by_code_with_geometry(client, study_setup, reader):
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    client.force_login(reader)
    payload = client.get(f"/api/reading/{a.pk}/").json()
    assert payload["display_code"] == a.display_code and payload["exam"] == 1
    assert [s["code"] for s in payload["series"]] == ["DWI", "T2axi", "T2sag"]
    t2sag = next(s for s in payload["series"] if s["code"] == "T2sag")
    assert t2sag["plane"] == "sagittal" and len(t2sag["slice_positions"]) == t2sag["n_slices"] == 8
    code_of = {s["id"]: s["code"] for s in payload["series"]}
    assert [code_of[pk] for pk in payload["default_series"]] == ["T2sag", "T2axi", "DWI"]   # no ADC: DWI


def test_the_viewer_loads_volumes_from_the_reading_endpoint_for_enrolled_readers_only(
        client, study_setup, reader, make_user):
    """Readers' volumes come from reader_study, through their own assignment; imaging's endpoint never serves
    them."""
    client.force_login(reader)
    first = selectors.worklist(study_setup["study"], reader, 1).first()
    payload = client.get(f"/api/reading/{first.pk}/").json()
    series = payload["series"][0]
    assert series["volume_url"].startswith(f"/api/reading/{first.pk}/series/{series['id']}/volume?v=")
    for s in first.case.series.all():
        assert client.get(f"/api/series/{s.pk}/volume", HTTP_ACCEPT_ENCODING="gzip").status_code == 404
    response = client.get(series["volume_url"], HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    values = np.frombuffer(gzip.decompress(b"".join(response.streaming_content)), dtype="<u2")
    assert values.shape == (series["n_slices"] * series["rows"] * series["cols"],)
    stored = {pattern_stack(8, 32, seed).tobytes() for seed in range(100)}
    assert values.tobytes() in stored                       # one of the test patterns, bit for bit
    client.force_login(make_user("reader"))
    assert client.get(series["volume_url"], HTTP_ACCEPT_ENCODING="gzip").status_code == 404


def test_submit_through_the_api_needs_csrf(study_setup, reader):
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(reader)
    body = json.dumps({"call": SARCOMA, "confidence": 60})
    assert strict.post(f"/api/reading/{a.pk}/read/", body, content_type="application/json").status_code == 403
    strict.get(f"/reading/{a.pk}/")
    token = strict.cookies["csrftoken"].value
    ok = strict.post(f"/api/reading/{a.pk}/read/", body, content_type="application/json",
                     HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200 and Read.objects.filter(assignment=a).count() == 1


def test_api_errors_name_the_field(client, study_setup, reader):
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    client.force_login(reader)
    response = client.post(f"/api/reading/{a.pk}/read/", {"call": "benign", "confidence": 40},
                           content_type="application/json")
    assert response.status_code == 400 and "call" in response.json()
    locked = selectors.worklist(study_setup["study"], reader, 2).first()
    response = client.post(f"/api/reading/{locked.pk}/read/", {"call": SARCOMA, "confidence": 40},
                           content_type="application/json")
    assert response.status_code == 403 and "finished exam 1" in response.json()["detail"]


def test_double_submit_through_the_api_makes_one_read(client, study_setup, reader):
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    client.force_login(reader)
    for _ in range(3):
        assert client.post(f"/api/reading/{a.pk}/read/", {"call": SARCOMA, "confidence": 66},
                           content_type="application/json").status_code == 200
    assert Read.objects.filter(assignment=a).count() == 1
    assert Read.objects.get(assignment=a).audit.count() == 1


def test_exam2_worklist_and_page_are_refused_before_the_washout(client, study_setup, reader):
    study = study_setup["study"]
    client.force_login(reader)
    a = selectors.worklist(study, reader, 2).first()
    assert client.get(f"/api/reading/{a.pk}/").status_code == 403
    assert client.get(f"/api/reading/studies/{study.pk}/exams/2/").status_code == 403
    response = client.get(f"/reading/{a.pk}/", follow=True)
    assert "exam 2 opens after you have finished exam 1" in response.content.decode()
    assert "ai-panel" not in response.content.decode()


def test_finished_exam1_cases_can_no_longer_be_opened(client, study_setup, reader):
    study = study_setup["study"]
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    client.force_login(reader)
    a = selectors.worklist(study, reader, 1).first()
    assert client.get(f"/api/reading/{a.pk}/").status_code == 403
    assert client.post(f"/api/reading/{a.pk}/read/", {"call": SARCOMA, "confidence": 1},
                       content_type="application/json").status_code == 403


def test_the_page_resumes_where_the_reader_left_off(client, study_setup, reader):
    study = study_setup["study"]
    items = list(selectors.worklist(study, reader, 1))
    services.read_submit(reader=reader, assignment=items[0], call=SARCOMA, confidence=70)
    client.force_login(reader)
    response = client.get(f"/studies/{study.pk}/exam/1/resume/")
    assert response.status_code == 302 and response.url == f"/reading/{items[1].pk}/"


def test_the_reader_finishes_exam1_from_the_worklist_page(client, study_setup, reader):
    study = study_setup["study"]
    client.force_login(reader)
    response = client.post(f"/studies/{study.pk}/exam/1/finish/", {"confirm": "yes"}, follow=True)
    assert "still have no answer" in response.content.decode()
    answer_all(reader, study, 1)
    assert 'id="finish-exam"' in client.get(f"/studies/{study.pk}/exam/1/").content.decode()
    response = client.post(f"/studies/{study.pk}/exam/1/finish/", {"confirm": "yes"}, follow=True)
    html = response.content.decode()
    assert "Exam 1 finished" in html and 'id="exam-2-opens"' in html


def test_active_time_reports_through_the_api(client, study_setup, reader):
    opened_ago(selectors.worklist(study_setup["study"], reader, 1))
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    client.force_login(reader)
    client.post(f"/api/reading/{a.pk}/time/", {"seconds": 15}, content_type="application/json")
    response = client.post(f"/api/reading/{a.pk}/time/", {"seconds": 4.5}, content_type="application/json")
    assert response.json() == {"active_seconds": 19.5}


def test_finishing_asks_first_with_the_count_of_unanswered_cases(client, study_setup, reader):
    """One click on "Finish exam 1" freezes nothing: it opens a confirmation with the count (issue 15, bug 4)."""
    study = study_setup["study"]
    items = list(selectors.worklist(study, reader, 1))
    services.read_submit(reader=reader, assignment=items[0], call=SARCOMA, confidence=70)
    client.force_login(reader)
    page = client.get(f"/studies/{study.pk}/exam/1/finish/").content.decode()
    assert 'data-unanswered="3"' in page and "3 unanswered cases" in page and "finish-confirm-button" not in page
    assert all(a.display_code in page for a in items[1:]) and items[0].display_code not in page
    answer_all(reader, study, 1)
    assert client.post(f"/studies/{study.pk}/exam/1/finish/").status_code == 200       # no "confirm": it asks
    page = client.get(f"/studies/{study.pk}/exam/1/finish/").content.decode()
    assert "0 unanswered cases" in page and 'id="finish-confirm-button"' in page
    assert selectors.exam_status(study, reader, 1).state == "open"
    client.post(f"/studies/{study.pk}/exam/1/finish/", {"confirm": "yes"})
    assert selectors.exam_status(study, reader, 1).state == "finished"


def test_a_finished_exams_worklist_shows_the_readers_own_calls_read_only_and_no_ai(client, study_setup, reader,
                                                                                  other_reader):
    study = study_setup["study"]
    answer_all(reader, study, 1, call=SARCOMA, confidence=64)
    answer_all(other_reader, study, 1, confidence=17)
    services.exam_finish(reader=reader, study=study, exam=1)
    client.force_login(reader)
    home = client.get(f"/studies/{study.pk}/").content.decode()
    assert 'id="exam-1-calls"' in home
    page = client.get(f"/studies/{study.pk}/exam/1/").content.decode()
    assert 'id="read-only-note"' in page and page.count('<td class="call">Sarcoma</td>') == 4
    assert page.count('<td class="confidence">64</td>') == 4 and ">17<" not in page    # not the other reader's
    assert "/reading/" not in page and "finish-exam" not in page                     # nothing to open or finish
    for marker in AI_MARKERS:
        assert marker not in page, marker
    for value in _ai_values(study_setup):
        assert value not in page, value
    assert client.get(f"/studies/{study.pk}/exam/2/").status_code == 302             # exam 2: in the washout


def _as_json(value):
    return json.loads(json.dumps(value))


def test_the_case_api_sends_the_payload_exactly_as_its_schema_serializer_would(client, study_setup, reader,
                                                                             coordinator):
    """The case API returns the payload without running ReadingPayloadSerializer (a speed-up): the serializer
    that documents it must give the same JSON, in exam 1 (answered and not) and in exam 2 with the AI."""
    study = study_setup["study"]
    client.force_login(reader)
    first, second = selectors.worklist(study, reader, 1)[:2]
    client.post(f"/api/reading/{first.pk}/read/", {"call": SARCOMA, "confidence": 70},
                content_type="application/json")
    seen = [client.get(f"/api/reading/{pk}/").json() for pk in (first.pk, second.pk)]
    _exam2_open(study, reader, coordinator)
    seen.append(client.get(f"/api/reading/{selectors.worklist(study, reader, 2).first().pk}/").json())
    for sent in seen:
        assert sent == _as_json(ReadingPayloadSerializer(sent).data)
    assert seen[0]["read"]["confidence"] == 70 and seen[1]["read"] is None
    assert seen[2]["ai"]["likelihood"] is not None and seen[2]["series"]


def test_handles_and_tags_are_djangos_salted_hmac_with_the_key_derived_once(settings):
    from django.utils.crypto import salted_hmac

    from reader_study import payloads

    for secret in ("first-secret-" * 4, "second-secret-" * 4):     # a changed secret gives other handles
        settings.SECRET_KEY = secret
        assert payloads.series_handle(12, 345) == salted_hmac(payloads.HANDLE_SALT, "12:345").hexdigest()[:16]
        assert payloads.volume_tag(12, "ab" * 32) == \
            salted_hmac(payloads.TAG_SALT, f"12:{'ab' * 32}").hexdigest()[:32]
    assert payloads.series_handle(12, 345) != payloads.series_handle(13, 345)


def test_series_meta_is_decoded_once_and_left_as_it_was_by_the_page_and_the_api(client, study_setup, reader):
    import copy

    client.force_login(reader)
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    before = copy.deepcopy([s.meta for s in selectors.cases_series([a.case_id])[a.case_id]])
    hits = selectors._kept_meta.cache_info().hits
    for url in (f"/reading/{a.pk}/", f"/api/reading/{a.pk}/", f"/api/reading/{a.pk}/"):
        assert client.get(url).status_code == 200
    assert selectors._kept_meta.cache_info().hits >= hits + 3 * len(before)      # decoded once, then kept
    assert [s.meta for s in selectors.cases_series([a.case_id])[a.case_id]] == before
