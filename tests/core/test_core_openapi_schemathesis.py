"""Every API operation against its OpenAPI schema (schemathesis): no 5xx, no response the schema does not state.

The schema is the one the app serves a signed-in user (/api/schema/, drf-spectacular); its requests go to the
WSGI app in-process, in a reader's session and in a coordinator's, with the CSRF token as the browser sends it.
Per operation and session: the requests a person would send (each seeded object its path can name, a few
sensible bodies), then a bounded number of generated ones (Hypothesis, derandomised: the same requests every
run), valid ones mostly about seeded objects, and a few invalid ones (a body, query or header the schema does
not allow). Every response must not be a server error, must have a documented status code and content type,
and its body must match the schema of that status code. And each operation a role is for must have answered
2xx at least once, so that the run is known to have reached past the 403s and 404s.

Nothing is excluded: the API has no operation that deletes more than a tumour box or signs anyone out (closing
a study only goes last). The requests run inside the test's transaction (the WSGI handler's
close_old_connections is disconnected, as Django's test client does), so whatever they change is rolled back.
"""

from __future__ import annotations

import itertools
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core import signals
from django.core.cache import cache as django_cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.constants import LEIOMYOMA, SARCOMA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reader_study"))
from factories_reader_study import (  # noqa: E402
    EvaluationFactory,
    ai_result,
    answer_all,
    case_with_series,
    move_washout,
    open_study,
)

pytestmark = pytest.mark.django_db

EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 3}   # requests per operation and session
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# 2xx only in a state the run may not reach: finishing an exam (every case answered), resuming a job (lost),
# copying a box (a boxed slice given, and an unboxed slice between the series' first and last boxed slices)
STATE_DEPENDENT = {"POST /api/reading/studies/{id}/exams/{exam}/finish/", "POST /api/jobs/{id}/resume/",
                   "POST /api/series/{id}/boxes/copy/"}
CSRF_TOKEN = "schemathesisCsrfToken0123456789x"   # a 32-character CSRF secret, sent as cookie and header


@pytest.fixture
def app_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    django_cache.clear()   # the API's rate limits count in the default cache: start from zero
    return settings


@contextmanager
def in_test_transaction():
    """The real WSGI handler shares the test's connection (and transaction) while its request_started and
    request_finished do not close "old" connections: what Django's test client does around each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(app_settings, make_user):
    """Two small open studies of the same 3 cases. In the first (with two more readers) the reader has finished
    exam 1 and is past the washout: exam 2 is open, with the AI; another reader has finished exam 1 (the washout
    runs). In
    the second the reader has finished both exams and scored one case of the descriptor task. A draft study, a
    reader not enrolled anywhere, a tumour box, a job, a training run with one model."""
    from imaging.models import Cohort, TumourBox
    from jobs import services as job_services
    from reader_study import payloads, selectors, services
    from reader_study.models import DESCRIPTORS, Assignment
    from training.models import TrainedModel, TrainingRun

    coordinator, reader = make_user("coordinator"), make_user("reader")
    others, newcomer = [make_user("reader"), make_user("reader")], make_user("reader")
    cases = [case_with_series(truth=truth, codes=("T2axi", "DWI"), n_slices=4, size=16, seed=seed)
             for seed, truth in enumerate((SARCOMA, LEIOMYOMA, LEIOMYOMA))]
    evaluation = EvaluationFactory()
    for case, likelihood in zip(cases, (81.5, 12.25, 40), strict=True):
        ai_result(evaluation, case, likelihood)
    study = open_study(coordinator=coordinator, readers=[reader, *others], cases=cases, evaluation=evaluation,
                       descriptor_k=2)
    _past_exam_1(study, reader)
    answer_all(others[1], study, 1)
    services.exam_finish(reader=others[1], study=study, exam=1)
    done = open_study(coordinator=coordinator, readers=[reader], cases=cases, evaluation=evaluation,
                      name="Study done (synthetic)")
    _past_exam_1(done, reader)
    answer_all(reader, done, 2, confidence=70)
    services.exam_finish(reader=reader, study=done, exam=2)
    scored = selectors.worklist(done, reader, DESCRIPTORS).first()
    services.descriptor_score_submit(reader=reader, assignment=scored, degeneration=True, irregular_margin=False)
    draft = services.study_create(name="Draft (synthetic)", created_by=coordinator, cases=cases,
                                  readers=[others[0]])
    # a case in no study or cohort: the only one whose boxes may still be edited (a case in an open study is
    # frozen, and its box edits are refused with 400)
    free = case_with_series(truth=LEIOMYOMA, codes=("T2axi",), n_slices=4, size=16, seed=9)
    series = [s for case in [free, *cases] for s in case.series.all()]
    TumourBox.objects.bulk_create(TumourBox(series=s, slice_index=1, x0=2, y0=3, x1=9, y1=12) for s in series)
    job = job_services.job_create(kind="worker_check", user=coordinator, enqueue=False)
    cohort = Cohort.objects.create(name="tiny-cohort", created_by=coordinator)
    run = TrainingRun.objects.create(name="tiny run", cohort=cohort, config={"epochs": 2}, repeats=1,
                                     created_by=coordinator)
    model = TrainedModel.objects.create(run=run, repeat=0, fold=0, seed=7, metrics={"auc": 0.75})
    from inference.models import ExternalValidation

    external = ExternalValidation.objects.create(
        name="external (synthetic)", evaluation=evaluation, created_by=coordinator, status="done",
        cohort=Cohort.objects.create(name="external-cohort", frozen=True, created_by=coordinator))
    mine = Assignment.objects.filter(reader=reader)
    studies = [study.pk, done.pk, draft.pk]
    ids = {    # the values of {id} by path prefix (the longest prefix that matches wins)
        # the descriptor task: open in the second study, locked in the first
        "/api/reading/descriptors/": list(mine.filter(exam=DESCRIPTORS).values_list("pk", flat=True)),
        "/api/reading/studies/": studies,
        # the exams of the first study: exam 1 finished, exam 2 open
        "/api/reading/": list(mine.filter(study=study).exclude(exam=DESCRIPTORS).values_list("pk", flat=True)),
        "/api/studies/": studies,
        "/api/analysis/studies/": studies,
        "/api/series/": [s.pk for s in series],
        "/api/cases/": [c.pk for c in cases],
        "/api/inference/evaluations/": [evaluation.pk],
        "/api/inference/external/": [external.pk],
        "/api/jobs/": [job.pk],
        "/api/training/runs/": [run.pk],
        "/api/training/models/": [model.pk],
    }
    json_bodies = {    # bodies a person would send, beside the generated ones
        "POST /api/reading/{id}/read/": [{"call": SARCOMA, "confidence": 80, "note": "", "active_seconds": 3},
                                         {"call": LEIOMYOMA, "confidence": 20}],
        "POST /api/reading/descriptors/{id}/score/": [{"degeneration": True, "irregular_margin": False}],
        "POST /api/series/{id}/boxes/": [{"slice_index": 2, "x0": 1, "y0": 2, "x1": 8, "y1": 9}],
        "POST /api/studies/{id}/enrol/": [{"reader": newcomer.pk}, {"reader": coordinator.pk}],
        "POST /api/studies/{id}/washout-override/": [{"reader": others[1].pk, "reason": "travel"}],
        "POST /api/studies/{id}/hanging-protocol/": [{"hanging_protocol": "T2axi | ADC or DWI"}],
    }
    # a volume is named by the assignment and the series' handle in it: the exams of the first study
    volumes = [{"id": a.pk, "handle": payloads.series_handle(a.pk, s.pk)}
               for a in mine.filter(study=study).exclude(exam=DESCRIPTORS) for s in a.case.series.all()]
    # exam 2's heat-maps: the first case's first series has some (issue 18), so a 200 is checked too
    from core.constants import SEQUENCE_CODES
    from inference import selectors as inference_selectors
    from inference.saliency_store import HELD_OUT, CaseMaps, write_case_maps

    mapped = next(s for s in cases[0].series.all() if s.sequence_code == "DWI")    # in the results' set
    heat = np.zeros((1, 8, 8), np.uint8)
    write_case_maps(inference_selectors.case_maps_path(evaluation.pk, cases[0].pk), CaseMaps(
        maps=heat, crops=heat, series_id=np.array([mapped.pk]), slice_no=np.array([1]),
        sequence_idx=np.array([SEQUENCE_CODES.index("DWI")]),
        window=np.array([[0, 0, 16]]), scale=0.0, models=("r0f0",), kind=HELD_OUT, crops_sha256="synthetic"))
    combinations = {"/api/reading/{id}/series/{handle}/volume": volumes,
                    "/api/reading/{id}/series/{handle}/heat-maps": volumes}
    extras = {label: [{"body": body, "media_type": "application/json"} for body in bodies]
              for label, bodies in json_bodies.items()}
    extras["DELETE /api/series/{id}/boxes/"] = [{"query": {"slice_index": 1}}]
    return {"reader": reader, "coordinator": coordinator, "ids": ids, "combinations": combinations,
            "extras": extras}


def _past_exam_1(study, reader) -> None:
    """The reader answers and finishes exam 1 and the washout passes: exam 2 is open."""
    from reader_study import services

    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=study.washout_days + 1)


def _signed_in(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def _seeded_paths(world, operation) -> list[dict]:
    """Path parameters that name seeded objects: ``combinations`` where the parameters go together, else each
    {id} of the longest matching prefix in ``ids`` (and each {exam})."""
    if operation.path in world["combinations"]:
        return world["combinations"][operation.path]
    prefix = max((p for p in world["ids"] if operation.path.startswith(p)), key=len, default=None)
    known = {"id": world["ids"][prefix]} if prefix else {}
    if "{exam}" in operation.path:
        known["exam"] = [1, 2]
    known = {name: values for name, values in known.items() if "{" + name + "}" in operation.path}
    return [dict(zip(known, values, strict=True)) for values in itertools.product(*known.values())] if known else []


def _chosen_cases(world, operation) -> list:
    """The requests a person would send, every time: each seeded object the path can name, without a body or
    query and with each body or query of ``extras``."""
    extras = [{}, *world["extras"].get(operation.label, [])]
    return [operation.Case(path_parameters=path, **extra)
            for path in _seeded_paths(world, operation) or [{}] for extra in extras]


def _strategy(world, operation, mode: GenerationMode):
    """Generated requests: valid ones mostly about seeded objects, the rest with whatever path parameters the
    generator picks; invalid ones (a body, query or header the schema does not allow) about seeded objects, as
    invalid path parameters only meet the URL patterns' 404."""
    paths = _seeded_paths(world, operation)
    if not paths:
        return operation.as_strategy(generation_mode=mode)
    seeded = st.sampled_from(paths).flatmap(
        lambda path: operation.as_strategy(generation_mode=mode, path_parameters=path))
    if mode == GenerationMode.NEGATIVE:
        return seeded
    return st.one_of(seeded, seeded, seeded, operation.as_strategy())   # 3 in 4 about seeded objects


def _run_operation(world, operation, cookies: dict, headers: dict, statuses: set) -> None:
    def check(case):
        response = case.call(headers=headers, cookies=cookies)
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    for case in _chosen_cases(world, operation):
        check(case)
    for mode, examples in EXAMPLES.items():
        budget = settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                          phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
        budget(given(case=_strategy(world, operation, mode))(check))()


@pytest.mark.parametrize("role", ["reader", "coordinator"])
def test_every_operation_answers_as_the_schema_says(world, role):
    client = _signed_in(world[role])
    cookies = {django_settings.SESSION_COOKIE_NAME: client.cookies[django_settings.SESSION_COOKIE_NAME].value,
               django_settings.CSRF_COOKIE_NAME: CSRF_TOKEN}
    # the schema as the app serves it to a signed-in user; its requests go to the WSGI app
    schema = schemathesis.openapi.from_dict(client.get("/api/schema/?format=json").json())
    schema.app = WSGIHandler()
    # identity: GZipMiddleware would compress the JSON, and the WSGI client (unlike a browser) does not inflate it
    headers = {"X-CSRFToken": CSRF_TOKEN, "Accept-Encoding": "identity"}
    failures, timings, statuses = [], {}, {}
    # closing a study ends what the other operations can do in it: it goes last
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda operation: operation.path.endswith("/close/"))
    assert len(operations) >= 30
    with in_test_transaction():
        for operation in operations:
            started = time.perf_counter()
            try:
                _run_operation(world, operation, cookies, headers, statuses.setdefault(operation.label, set()))
            except (Exception, BaseExceptionGroup) as exc:   # every operation is tried; all failures reported
                failures.append(f"--- {role}: {operation.label}\n{exc}")
            timings[operation.label] = time.perf_counter() - started
    print(f"{role}: slowest operations (s)", sorted(timings.items(), key=lambda t: -t[1])[:5])
    assert not failures, "\n".join(failures)
    # and the run reached what the role is for: each of its operations answered 2xx at least once
    answered = {label for label, codes in statuses.items() if any(200 <= code < 300 for code in codes)}
    meant = {label for label in statuses if (" /api/reading/" in label) == (role == "reader")}
    assert meant - STATE_DEPENDENT - answered == set(), {label: statuses[label] for label in meant - answered}
