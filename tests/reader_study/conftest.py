"""Reader-study fixtures: a private MEDIA_ROOT per test, and a small open study with two readers."""

import pytest

from core.constants import LEIOMYOMA, SARCOMA
from factories_reader_study import EvaluationFactory, ai_result, case_with_series, open_study


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Series volumes of a test go to its own folder, never to var/media; a fast password hasher (the
    default one takes ~0.5 s per user, and every test here makes three)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


@pytest.fixture
def other_reader(make_user):
    return make_user("reader")


@pytest.fixture
def study_setup(coordinator, reader, other_reader):
    """An OPEN study of 4 SYNTHETIC cases (1 sarcoma, 3 leiomyomas) with AI results, two readers enrolled."""
    cases = [case_with_series(truth=SARCOMA, seed=1)] + [case_with_series(truth=LEIOMYOMA, seed=10 * i)
                                                         for i in range(1, 4)]
    evaluation = EvaluationFactory()
    for case, likelihood in zip(cases, (87.31, 13.47, 41.73, 19.61), strict=True):
        ai_result(evaluation, case, likelihood)
    study = open_study(coordinator=coordinator, readers=[reader, other_reader], cases=cases,
                       evaluation=evaluation)
    return {"study": study, "cases": cases, "evaluation": evaluation}


@pytest.fixture
def role_groups(transactional_db):
    """A transactional test empties every table after it, the migration's role groups too: remake them."""
    from django.contrib.auth.models import Group

    from accounts.roles import ROLES

    for name in ROLES:
        Group.objects.get_or_create(name=name)
