"""External validation with real Keras models (SLOW): the tiny SYNTHETIC run of test_inference_django_trained.py
(2 repeats × 2 folds, trained inline, evaluated with `manage.py evaluate --inline`), then its frozen set applied to
a SYNTHETIC external cohort of cases imported after training, every model predicting every crop from its
.keras file. The stubbed-model tests are in test_inference_external.py."""

import io
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings

from core.constants import LEIOMYOMA, SARCOMA
from factories_inference import TINY_CONFIG, make_cohort, make_new_case
from inference import selectors, services_external
from inference.models import CaseAIResult, Evaluation, ExternalValidation
from jobs.models import JobStatus

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CONFIG = {**TINY_CONFIG, "epochs": 1, "run_eagerly": True, "batchnorm_momentum": 0.0}


@pytest.fixture(scope="module")
def validated(django_db_setup, django_db_blocker, tmp_path_factory):
    from imaging.models import Case, Cohort, CohortCase
    from jobs.models import Job
    from jobs.services import job_run_inline
    from training import services as training
    from training.models import TrainingRun

    override = override_settings(MEDIA_ROOT=tmp_path_factory.mktemp("external-trained") / "media")
    override.enable()
    try:
        with django_db_blocker.unblock():
            run = training.training_run_start(cohort=make_cohort("te", n_folds=2), config=CONFIG, repeats=2,
                                              enqueue=False)
            job_run_inline(job_pk=run.job.pk)
            call_command("evaluate", "--run", str(run.pk), "--inline", stdout=io.StringIO())
            evaluation = Evaluation.objects.get(training_run=run)
            cohort = Cohort.objects.create(name="te-external", frozen=True)
            for i, truth in enumerate((SARCOMA, SARCOMA, LEIOMYOMA, LEIOMYOMA)):
                case = make_new_case(f"SYN-TE-{i}", truth=truth)
                CohortCase.objects.create(cohort=cohort, case=case, truth=truth)
            validation = services_external.external_validation_start(evaluation=evaluation, cohort=cohort,
                                                                     enqueue=False)
            job = job_run_inline(job_pk=validation.job.pk)
            validation.refresh_from_db()
            yield SimpleNamespace(run=run, evaluation=evaluation, validation=validation, job=job, cohort=cohort)
            for model in (ExternalValidation, CaseAIResult, Evaluation, TrainingRun, Cohort, Case, Job):
                model.objects.all().delete()
    finally:
        override.disable()


def test_the_frozen_set_of_a_trained_run_is_validated_on_an_external_cohort(validated):
    evaluation = Evaluation.objects.get(pk=validated.evaluation.pk)
    assert evaluation.status == Evaluation.Status.DONE, evaluation.job.error
    assert validated.job.status == JobStatus.SUCCEEDED, validated.job.error
    validation = validated.validation
    assert validation.status == ExternalValidation.Status.DONE
    assert validated.job.done == validated.job.total == 4 * 4 + 1      # 4 cases × 4 models, then the metrics
    assert validated.job.result["predictions"] == {"reused": 0, "predicted": 4}
    results = validation.results
    assert results["synthetic"] and results["n_scored"] == 4 and results["n_ensembles"] == 2
    for row in results["cases"]:
        assert row["likelihood_percent"] in (0.0, 50.0, 100.0)        # 2 ensembles
    for case in validated.cohort.cases.all():
        stored = np.load(selectors.case_prediction_path(evaluation, case.pk))
        assert stored["fold_probs"].shape == (2, 2, 6)
        assert np.all((stored["fold_probs"] >= 0) & (stored["fold_probs"] <= 1))
    metrics = results["metrics"]
    assert metrics["n_sarcoma"] == 2 and metrics["n_leiomyoma"] == 2
    for name in ("sensitivity", "specificity", "accuracy", "ss_avg", "auc"):
        value = metrics["likelihood"][name]
        assert 0.0 <= value["ci_low"] <= value["estimate"] <= value["ci_high"] <= 1.0, name
