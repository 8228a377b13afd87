"""Permission MATRIX: every role against every reader-study endpoint (pages, API, admin), exact status codes.

Roles: anonymous; the owner (a reader enrolled in the study, whose case/item the URL names); another reader
enrolled in the same study (must never reach the owner's reads); an outsider reader (not enrolled); a
coordinator; an admin. The study is open, the owner has not finished exam 1 (so exam 2 and the descriptor
task are locked for them). Anything a user may not see answers 404 or 403, never the data.
"""

import pytest
from django.urls import reverse

from factories_reader_study import case_with_series
from reader_study import payloads, selectors, services
from reader_study.models import DESCRIPTORS, Study

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "owner", "other", "outsider", "coordinator", "admin")


def _codes(anonymous, owner, other, outsider, coordinator, admin):
    return dict(zip(ROLES, (anonymous, owner, other, outsider, coordinator, admin), strict=True))


READER_PAGE = {"anonymous": 302, "coordinator": 403, "admin": 403}
COORDINATOR_PAGE = _codes(302, 403, 403, 403, 200, 200)
COORDINATOR_ACTION = _codes(302, 403, 403, 403, 302, 302)
READER_API = {"anonymous": 403, "coordinator": 403, "admin": 403}
ADMIN_PAGE = _codes(302, 302, 302, 302, 200, 200)   # readers are not staff: sent to the admin login

# (name, method, url template, body, expected codes by role)
MATRIX = [
    # reader pages
    ("my studies", "get", "/studies/", None, {**READER_PAGE, "owner": 200, "other": 200, "outsider": 200}),
    ("study page", "get", "/studies/{study}/", None,
     {**READER_PAGE, "owner": 200, "other": 200, "outsider": 404}),
    ("exam 1 worklist", "get", "/studies/{study}/exam/1/", None,
     {**READER_PAGE, "owner": 200, "other": 200, "outsider": 404}),
    ("exam 2 worklist (locked)", "get", "/studies/{study}/exam/2/", None,
     {**READER_PAGE, "owner": 302, "other": 302, "outsider": 404}),
    ("resume exam 1", "get", "/studies/{study}/exam/1/resume/", None,
     {**READER_PAGE, "owner": 302, "other": 302, "outsider": 404}),
    ("finish exam 1: the confirmation page", "get", "/studies/{study}/exam/1/finish/", None,
     {**READER_PAGE, "owner": 200, "other": 200, "outsider": 404}),
    ("finish exam 1 without confirming: asks", "post", "/studies/{study}/exam/1/finish/", None,
     {**READER_PAGE, "owner": 200, "other": 200, "outsider": 404}),
    ("finish exam 1 confirmed (unanswered: refused)", "post", "/studies/{study}/exam/1/finish/",
     {"confirm": "yes"}, {**READER_PAGE, "owner": 302, "other": 302, "outsider": 404}),
    ("reading page exam 1", "get", "/reading/{a1}/", None,
     {**READER_PAGE, "owner": 200, "other": 404, "outsider": 404}),
    ("reading page exam 2 (locked)", "get", "/reading/{a2}/", None,
     {**READER_PAGE, "owner": 302, "other": 404, "outsider": 404}),
    ("descriptor worklist (locked)", "get", "/studies/{study}/descriptors/", None,
     {**READER_PAGE, "owner": 302, "other": 302, "outsider": 404}),
    ("descriptor page (locked: as if missing)", "get", "/descriptors/{item}/", None,
     {**READER_PAGE, "owner": 404, "other": 404, "outsider": 404}),
    # coordinator pages
    ("study list", "get", "/coordination/studies/", None, COORDINATOR_PAGE),
    ("new study", "get", "/coordination/studies/new/", None, COORDINATOR_PAGE),
    ("study detail", "get", "/coordination/studies/{study}/", None, COORDINATOR_PAGE),
    ("adopt corrected truth (not stale)", "get", "/coordination/studies/{study}/adopt-truth/", None, COORDINATOR_PAGE),
    ("open study", "post", "/coordination/studies/{study}/open/", None, COORDINATOR_ACTION),
    ("close study", "post", "/coordination/studies/{study}/close/", None, COORDINATOR_ACTION),
    ("enrol", "post", "/coordination/studies/{study}/enrol/", {"reader": "{outsider_id}"},
     COORDINATOR_ACTION),
    ("washout override", "post", "/coordination/studies/{study}/washout-override/",
     {"reader": "{owner_id}", "reason": "test"}, COORDINATOR_ACTION),
    ("descriptor consensus", "post", "/coordination/studies/{study}/descriptor-consensus/", None,
     COORDINATOR_ACTION),
    ("hanging protocol", "post", "/coordination/studies/{study}/hanging-protocol/",
     {"hanging_protocol": "T2axi | DWI"}, COORDINATOR_ACTION),
    # reader API
    ("api my studies", "get", "/api/reading/studies/", None,
     {**READER_API, "owner": 200, "other": 200, "outsider": 200}),
    ("api study", "get", "/api/reading/studies/{study}/", None,
     {**READER_API, "owner": 200, "other": 200, "outsider": 404}),
    ("api exam 1 worklist", "get", "/api/reading/studies/{study}/exams/1/", None,
     {**READER_API, "owner": 200, "other": 200, "outsider": 404}),
    ("api exam 2 worklist (locked)", "get", "/api/reading/studies/{study}/exams/2/", None,
     {**READER_API, "owner": 403, "other": 403, "outsider": 404}),
    ("api finish exam 1 (unanswered)", "post", "/api/reading/studies/{study}/exams/1/finish/", None,
     {**READER_API, "owner": 400, "other": 400, "outsider": 404}),
    ("api descriptor worklist (locked)", "get", "/api/reading/studies/{study}/descriptors/", None,
     {**READER_API, "owner": 403, "other": 403, "outsider": 404}),
    ("api case exam 1", "get", "/api/reading/{a1}/", None,
     {**READER_API, "owner": 200, "other": 404, "outsider": 404}),
    ("api case exam 2 (locked)", "get", "/api/reading/{a2}/", None,
     {**READER_API, "owner": 403, "other": 404, "outsider": 404}),
    ("api submit read", "post", "/api/reading/{a1}/read/", {"call": "sarcoma", "confidence": 55},
     {**READER_API, "owner": 200, "other": 404, "outsider": 404}),
    ("api submit read exam 2 (locked)", "post", "/api/reading/{a2}/read/",
     {"call": "sarcoma", "confidence": 55}, {**READER_API, "owner": 403, "other": 404, "outsider": 404}),
    ("api active time", "post", "/api/reading/{a1}/time/", {"seconds": 3},
     {**READER_API, "owner": 200, "other": 404, "outsider": 404}),
    ("api descriptor case (locked: as if missing)", "get", "/api/reading/descriptors/{item}/", None,
     {**READER_API, "owner": 404, "other": 404, "outsider": 404}),
    ("api descriptor score (locked: as if missing)", "post", "/api/reading/descriptors/{item}/score/",
     {"degeneration": True, "irregular_margin": False},
     {**READER_API, "owner": 404, "other": 404, "outsider": 404}),
    ("api descriptor time (locked: as if missing)", "post", "/api/reading/descriptors/{item}/time/",
     {"seconds": 3}, {**READER_API, "owner": 404, "other": 404, "outsider": 404}),
    # the readers' volumes (reader_study: through the reader's own open assignment) and imaging's, for
    # coordinators and admins
    ("series volume (reading)", "get", "/api/reading/{a1}/series/{handle1}/volume", None,
     {**READER_API, "owner": 200, "other": 404, "outsider": 404}),
    ("series volume (reading, exam 2 locked)", "get", "/api/reading/{a2}/series/{handle2}/volume", None,
     {**READER_API, "owner": 403, "other": 404, "outsider": 404}),
    # exam 2's heat-maps: an exam-1 assignment answers as if it were not the reader's (404), exam 2 locked: 403
    ("series heat-maps (reading, exam 1)", "get", "/api/reading/{a1}/series/{handle1}/heat-maps", None,
     {**READER_API, "owner": 404, "other": 404, "outsider": 404}),
    ("series heat-maps (reading, exam 2 locked)", "get", "/api/reading/{a2}/series/{handle2}/heat-maps", None,
     {**READER_API, "owner": 403, "other": 404, "outsider": 404}),
    ("series volume (imaging)", "get", "/api/series/{series}/volume", None,
     _codes(403, 404, 404, 404, 200, 200)),
    # coordinator API
    ("api study list", "get", "/api/studies/", None, _codes(403, 403, 403, 403, 200, 200)),
    ("api progress", "get", "/api/studies/{study}/progress/", None, _codes(403, 403, 403, 403, 200, 200)),
    ("api open (already open)", "post", "/api/studies/{study}/open/", None,
     _codes(403, 403, 403, 403, 400, 400)),
    ("api close", "post", "/api/studies/{study}/close/", None, _codes(403, 403, 403, 403, 200, 200)),
    ("api enrol", "post", "/api/studies/{study}/enrol/", {"reader": "{outsider_id}"},
     _codes(403, 403, 403, 403, 200, 200)),
    ("api washout override", "post", "/api/studies/{study}/washout-override/",
     {"reader": "{owner_id}", "reason": "test"}, _codes(403, 403, 403, 403, 200, 200)),
    ("api hanging protocol", "post", "/api/studies/{study}/hanging-protocol/",
     {"hanging_protocol": "T2axi | DWI"}, _codes(403, 403, 403, 403, 200, 200)),
    ("api descriptor consensus (2 readers < k)", "post", "/api/studies/{study}/descriptor-consensus/", None,
     _codes(403, 403, 403, 403, 400, 400)),
    # Django admin
    ("admin studies", "get", "/admin/reader_study/study/", None, ADMIN_PAGE),
    ("admin study", "get", "/admin/reader_study/study/{study}/change/", None, ADMIN_PAGE),
    ("admin reads", "get", "/admin/reader_study/read/", None, ADMIN_PAGE),
    ("admin progress", "get", "/admin/reader_study/examprogress/", None, ADMIN_PAGE),
]


@pytest.fixture
def world(study_setup, reader, other_reader, make_user, coordinator, admin_user):
    study = study_setup["study"]
    outsider = make_user("reader")
    ids = {
        "study": study.pk, "owner_id": reader.pk, "outsider_id": outsider.pk,
        "a1": selectors.worklist(study, reader, 1).first().pk,
        "a2": selectors.worklist(study, reader, 2).first().pk,
        "item": selectors.worklist(study, reader, DESCRIPTORS).first().pk,
        "series": study_setup["cases"][0].series.first().pk,
        "handle1": _handle(selectors.worklist(study, reader, 1).first()),
        "handle2": _handle(selectors.worklist(study, reader, 2).first()),
    }
    users = {"anonymous": None, "owner": reader, "other": other_reader, "outsider": outsider,
             "coordinator": coordinator, "admin": admin_user}
    return ids, users


def _handle(assignment) -> str:
    return payloads.series_handle(assignment.pk, selectors.case_series(assignment.case_id)[0].pk)


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        filled = {k: _fill(v, ids) for k, v in value.items()}
        return {k: int(v) if k == "reader" else v for k, v in filled.items()}
    return value


def test_the_matrix_names_every_reader_study_url():
    """A new endpoint must be added to the matrix: every URL pattern of the app appears in it."""
    from reader_study import urls

    tested = {template for _, _, template, _, _ in MATRIX}
    for pattern in urls.urlpatterns:
        route = "/" + str(pattern.pattern).replace("<int:pk>", "{x}").replace("<int:exam>", "1")
        route = route.replace("<str:handle>", "{x}")
        assert any(_shape(t) == _shape(route) or _shape(t) == _shape(route.replace("/1/", "/2/"))
                   for t in tested), f"{pattern.name} ({route}) is missing from the permission matrix"


def _shape(template: str) -> str:
    import re

    return re.sub(r"\{[a-z0-9_]+\}", "{x}", template)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "method", "template", "body", "expected"), MATRIX,
                         ids=[m[0] for m in MATRIX])
def test_permission_matrix(client, world, role, name, method, template, body, expected):
    ids, users = world
    if users[role] is not None:
        client.force_login(users[role])
    url = _fill(template, ids)
    if method == "get":
        response = client.get(url)
    elif template.startswith("/api/"):
        response = client.post(url, _fill(body, ids) or {}, content_type="application/json")
    else:
        response = client.post(url, _fill(body, ids) or {})
    assert response.status_code == expected[role], f"{role} {method.upper()} {url}: {response.status_code}"
    if role == "anonymous" and response.status_code == 302:
        assert response.url.startswith((reverse("login"), "/admin/login/"))


def test_a_reader_never_sees_another_readers_answers(client, world, study_setup):
    ids, users = world
    owner, other = users["owner"], users["other"]
    client.force_login(owner)
    client.post(f"/api/reading/{ids['a1']}/read/",
                {"call": "sarcoma", "confidence": 91, "note": "OWNER-NOTE"}, content_type="application/json")
    client.force_login(other)
    study = study_setup["study"]
    texts = [client.get(u).content.decode() for u in (
        "/studies/", f"/studies/{study.pk}/", f"/studies/{study.pk}/exam/1/", "/api/reading/studies/",
        f"/api/reading/studies/{study.pk}/exams/1/")]
    for a in selectors.worklist(study, other, 1):
        texts.append(client.get(f"/reading/{a.pk}/").content.decode())
        payload = client.get(f"/api/reading/{a.pk}/").json()
        assert payload["read"] is None and payload["done"] == 0       # the owner's answer is not theirs
    assert all("OWNER-NOTE" not in t for t in texts)


def test_a_draft_study_is_invisible_to_its_readers(client, coordinator, reader):
    study = services.study_create(name="Draft", created_by=coordinator, cases=[case_with_series()],
                                  readers=[reader])
    client.force_login(reader)
    assert client.get(f"/studies/{study.pk}/").status_code == 404
    assert client.get(f"/api/reading/studies/{study.pk}/").status_code == 404
    assert study.status == Study.Status.DRAFT
