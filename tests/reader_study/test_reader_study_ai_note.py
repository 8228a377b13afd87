"""The study page says that the likelihood exam 2 shows is in-sample for cases of the evaluation's training
cohort (issue 14, item 4; METHOD §9 keeps exam 2 so). SYNTHETIC cases of the reader-study fixtures."""

import pytest
from django.urls import reverse

from inference.models import CaseAIResult
from reader_study import selectors

pytestmark = pytest.mark.django_db


def test_the_study_page_says_the_exam2_likelihood_is_in_sample_for_training_cohort_cases(client, study_setup,
                                                                                         coordinator):
    study = study_setup["study"]
    assert selectors.study_case_summary(study)["ai_in_sample"] == 4
    client.force_login(coordinator)
    page = client.get(reverse("reader_study:study_detail", args=[study.pk])).content.decode()
    assert 'id="ai-in-sample-note"' in page
    assert "<strong>in-sample</strong> for 4 of these cases" in page
    assert "nested (out-of-sample)" in page


def test_new_cases_predicted_by_all_models_are_not_called_in_sample(client, study_setup, coordinator):
    study = study_setup["study"]
    CaseAIResult.objects.filter(evaluation=study.evaluation, case=study_setup["cases"][0]).update(
        is_deployment=True)
    assert selectors.study_case_summary(study)["ai_in_sample"] == 3
    CaseAIResult.objects.filter(evaluation=study.evaluation).update(is_deployment=True)
    client.force_login(coordinator)
    page = client.get(reverse("reader_study:study_detail", args=[study.pk])).content.decode()
    assert 'id="ai-in-sample-note"' not in page
