"""Coordinator pages (create, enrol, open, progress, override, close), the admin, the landing-page links."""

import pytest
from django.contrib.auth import get_user_model

from core.constants import SARCOMA
from factories_reader_study import EvaluationFactory, ai_result, answer_all, case_with_series
from reader_study import services
from reader_study.demo import DEMO_STUDY, demo_study
from reader_study.models import EXAMS, Assignment, Enrollment, Study, StudyEvent

pytestmark = pytest.mark.django_db


def test_a_coordinator_creates_enrols_opens_and_follows_a_study(client, coordinator, reader, make_user):
    cases = [case_with_series(), case_with_series(truth=SARCOMA)]
    evaluation = EvaluationFactory()
    client.force_login(coordinator)
    form = client.get("/coordination/studies/new/").content.decode()
    assert cases[0].pseudonym in form and evaluation.name in form     # coordinators may see pseudonyms
    response = client.post("/coordination/studies/new/", {
        "name": "Pilot", "cases": [c.pk for c in cases], "evaluation": evaluation.pk, "readers": [reader.pk],
        "washout_days": 30, "descriptor_k": 4, "instructions": "Read carefully."})
    study = Study.objects.get(name="Pilot")
    assert response.status_code == 302 and response.url == f"/coordination/studies/{study.pk}/"
    assert (study.status, study.washout_days, study.evaluation, study.created_by) == ("draft", 30, evaluation,
                                                                                      coordinator)
    late = make_user("reader")
    client.post(f"/coordination/studies/{study.pk}/enrol/", {"reader": late.pk})
    assert Enrollment.objects.filter(study=study).count() == 2
    client.post(f"/coordination/studies/{study.pk}/open/")
    study.refresh_from_db()
    assert study.status == "open" and Assignment.objects.filter(study=study, exam__in=EXAMS).count() == 2 * 2 * 2
    answer_all(reader, study, 1, seconds=21)
    page = client.get(f"/coordination/studies/{study.pk}/").content.decode()
    assert 'data-reader="' + reader.username in page and "2 / 2" in page and "time 42 s" in page
    assert "median 21 s/case" in page
    client.post(f"/coordination/studies/{study.pk}/close/")
    study.refresh_from_db()
    assert study.status == "closed"
    events = StudyEvent.objects.filter(study=study).order_by("at", "pk")
    assert list(events.values_list("action", flat=True)) == [
        "created", "enrolled", "enrolled", "opened", "closed"]


def test_the_create_form_reports_service_errors_on_the_field(client, coordinator):
    client.force_login(coordinator)
    response = client.post("/coordination/studies/new/",
                           {"name": "Empty", "washout_days": 28, "descriptor_k": 4})
    assert response.status_code == 200 and "choose the study&#x27;s cases" in response.content.decode()
    assert not Study.objects.filter(name="Empty").exists()


def test_opening_an_incomplete_study_shows_why(client, coordinator):
    study = services.study_create(name="No readers", created_by=coordinator, cases=[case_with_series()])
    client.force_login(coordinator)
    html = client.post(f"/coordination/studies/{study.pk}/open/", follow=True).content.decode()
    assert "enrol at least one reader" in html
    assert Study.objects.get(pk=study.pk).status == "draft"


def test_a_coordinator_overrides_the_washout_from_the_study_page(client, study_setup, reader, coordinator):
    study = study_setup["study"]
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    client.force_login(coordinator)
    url = f"/coordination/studies/{study.pk}/washout-override/"
    html = client.post(url, {"reader": reader.pk, "reason": ""}, follow=True).content.decode()
    assert "give a reason" in html
    client.post(url, {"reader": reader.pk, "reason": "demo day"})
    page = client.get(f"/coordination/studies/{study.pk}/").content.decode()
    assert "washout overridden" in page and "washout_override" in page and "demo day" in page


def test_the_api_progress_lists_every_reader_per_exam(client, study_setup, reader, other_reader, coordinator):
    answer_all(reader, study_setup["study"], 1, seconds=10)
    client.force_login(coordinator)
    body = client.get(f"/api/studies/{study_setup['study'].pk}/progress/").json()
    rows = {r["username"]: r for r in body["readers"]}
    assert set(rows) == {reader.username, other_reader.username}
    assert rows[reader.username]["exams"][0]["finished_at"] is None
    exam1 = rows[reader.username]["exams"][0]
    assert (exam1["done"], exam1["active_seconds"]) == (4, 40)
    assert rows[other_reader.username]["exams"][0]["done"] == 0 and body["study"]["cases"] == 4


def test_the_admin_opens_a_study_through_the_service(client, coordinator, reader):
    study = services.study_create(name="Via admin", created_by=coordinator, cases=[case_with_series()],
                                  readers=[reader])
    client.force_login(coordinator)
    response = client.post("/admin/reader_study/study/",
                           {"action": "open_studies", "_selected_action": [study.pk]}, follow=True)
    assert response.status_code == 200
    assert Study.objects.get(pk=study.pk).status == "open"
    assert Assignment.objects.filter(study=study, reader=reader, exam__in=EXAMS).count() == 2   # worklists drawn


def test_the_admin_shows_reads_read_only(client, study_setup, reader, coordinator):
    answer_all(reader, study_setup["study"], 1)
    client.force_login(coordinator)
    read = Assignment.objects.filter(reader=reader, exam=1).first().read
    page = client.get(f"/admin/reader_study/read/{read.pk}/change/")
    assert page.status_code == 200 and 'name="confidence"' not in page.content.decode()
    assert client.get("/admin/reader_study/read/add/").status_code == 403


def test_landing_pages_link_to_the_reader_study_pages(client, reader, coordinator):
    client.force_login(reader)
    assert 'href="/studies/"' in client.get("/reader/").content.decode()
    client.force_login(coordinator)
    html = client.get("/coordinator/").content.decode()
    assert 'href="/coordination/studies/"' in html and 'href="/coordination/studies/new/"' in html


def test_the_demo_step_makes_an_open_study_from_synthetic_cases(coordinator, make_user):
    get_user_model().objects.filter(pk=coordinator.pk).update(username="coordinator")
    for i in range(1, 7):
        make_user("reader", username=f"reader{i}")
    said = []
    demo_study(said.append)
    assert "skipped" in said[0]                                       # no phantom case with images yet
    cases = [case_with_series(truth=SARCOMA)] + [case_with_series() for _ in range(3)]
    evaluation = EvaluationFactory()
    demo_study(said.append)
    study = Study.objects.get(name=DEMO_STUDY)
    assert study.status == "open" and study.enrollments.count() == 6 and study.evaluation is None
    ai_result(evaluation, cases[0], 70.0)                            # an evaluation finishes later
    demo_study(said.append)                                           # idempotent, attaches it
    study.refresh_from_db()
    assert study.evaluation == evaluation and study.cases.count() == 4 and "now shows" in said[-1]
    demo_study(said.append)
    assert said[-1].endswith("exists")
