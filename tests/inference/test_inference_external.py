"""External validation (issue 14, item 5) on SYNTHETIC data: the science (metrics and intervals equal to
core.intervals', calibration bins, the overlap rule), the refusal of cohorts that share a patient with the training
cohort (same case, identity alias, person hash), the job end to end on a run whose models "finished" with
hand-made held-out predictions and whose new-case predictions are stubbed (as test_inference_django.py does),
the frozen set and thresholds, resume, permissions, the pages, figures, CSV and JSON."""

import csv
import io

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from core.constants import LEIOMYOMA, SARCOMA
from core.intervals import bootstrap, delong_auc, wilson
from factories_inference import fake_trained_run, make_cohort, make_new_case
from inference import external, runners, selectors, services, services_external
from inference.external import CaseKeys, patient_overlap
from inference.models import CaseAIResult, ExternalValidation
from jobs import services as jobs
from jobs.models import JobStatus

# --- the science (no database) ------------------------------------------------------------------------------

LIKELIHOOD = np.array([100, 95.8, 87.5, 62.5, 50.0, 45.8, 12.5, 0, 4.2, 58.3, 37.5, 20.8])  # SYNTHETIC
TRUTH = np.array([1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], dtype=bool)


def test_metrics_of_the_likelihood_calls_are_core_intervals_wilson_delong_and_bootstrap():
    found = external.validation_metrics(LIKELIHOOD, TRUTH, resamples=2000, seed=7)
    calls = LIKELIHOOD >= 50
    tp, tn = int((calls & TRUTH).sum()), int((~calls & ~TRUTH).sum())
    assert (tp, tn) == (5, 5) and found["confusion"] == {"tp": 5, "fn": 1, "tn": 5, "fp": 1}
    block = found["likelihood"]
    assert block["sensitivity"] == wilson(5, 6).as_dict()
    assert block["specificity"] == wilson(5, 6).as_dict()
    assert block["accuracy"] == wilson(10, 12).as_dict()
    auc = delong_auc(LIKELIHOOD, TRUTH)
    assert block["auc"]["estimate"] == pytest.approx(auc.estimate) and block["auc"]["ci_low"] == pytest.approx(auc.low)
    assert block["auc"]["ci_high"] == pytest.approx(auc.high)
    correct = (calls == TRUTH).astype(float)
    weight = np.where(TRUTH, 0.5 / 6, 0.5 / 6)
    ss = bootstrap(lambda idx: (weight[idx] * correct[idx]).sum(axis=1), 12, resamples=2000, seed=7, strata=TRUTH)
    assert block["ss_avg"]["estimate"] == pytest.approx((5 / 6 + 5 / 6) / 2)
    assert (block["ss_avg"]["ci_low"], block["ss_avg"]["ci_high"]) == pytest.approx((ss.low, ss.high))
    assert block["ss_avg"]["resamples"] == 2000 and block["ss_avg"]["seed"] == 7
    assert found["roc"]["auc"] == pytest.approx(auc.estimate) and found["roc"]["fpr"][0] == 0.0
    assert found["roc"]["tpr"][-1] == 1.0 and found["roc"]["threshold_percent"][0] is None
    assert found["brier"] == pytest.approx(np.mean((LIKELIHOOD / 100 - TRUTH) ** 2))
    assert found["ensembles"] is None


def test_mean_over_the_ensembles_uses_each_ensembles_calls():
    member_calls = np.array([LIKELIHOOD >= 40, LIKELIHOOD >= 60])            # SYNTHETIC (2 members, 12 cases)
    member_scores = np.array([np.round(LIKELIHOOD / 25) - 2, np.round(LIKELIHOOD / 25) - 2])
    found = external.validation_metrics(LIKELIHOOD, TRUTH, member_calls=member_calls, member_scores=member_scores)
    per_member_sensitivity = [(c & TRUTH).sum() / 6 for c in member_calls]
    assert found["ensembles"]["sensitivity"]["estimate"] == pytest.approx(np.mean(per_member_sensitivity))
    assert found["ensembles"]["n_members"] == 2
    with pytest.raises(ValueError, match="member_calls"):
        external.validation_metrics(LIKELIHOOD, TRUTH, member_calls=member_calls[:, :5])


def test_calibration_bins_count_cases_and_match_sklearn_off_the_edges():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(3)                                           # SYNTHETIC likelihoods off bin edges
    likelihood = np.round(rng.uniform(0, 100, 200), 3)
    likelihood[np.isclose(likelihood % 10, 0)] += 0.5
    truth = rng.uniform(0, 100, 200) < likelihood
    bins = external.calibration_bins(likelihood, truth)
    full = [b for b in bins if b["n"]]
    observed, mean = calibration_curve(truth, likelihood / 100, n_bins=10, strategy="uniform")
    assert [b["observed_percent"] for b in full] == pytest.approx(100 * observed)
    assert [b["mean_likelihood_percent"] for b in full] == pytest.approx(100 * mean)
    assert sum(b["n"] for b in bins) == 200 and sum(b["n_sarcoma"] for b in bins) == int(truth.sum())
    b = full[3]
    assert (b["observed_ci_low_percent"], b["observed_ci_high_percent"]) == pytest.approx(
        (100 * wilson(b["n_sarcoma"], b["n"]).low, 100 * wilson(b["n_sarcoma"], b["n"]).high))


def test_calibration_puts_the_50_percent_tie_with_the_sarcoma_calls_and_100_in_the_last_bin():
    bins = external.calibration_bins([50.0, 100.0, 0.0, 49.9], [True, True, False, False])
    assert [b["n"] for b in bins] == [1, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    assert bins[5]["low"] == 50 and bins[5]["mean_likelihood_percent"] == 50.0
    assert bins[1]["observed_percent"] is None
    with pytest.raises(ValueError, match="likelihood"):
        external.calibration_bins([120.0], [True])


def test_metrics_need_both_classes_and_leave_out_the_auc_below_two_per_class():
    with pytest.raises(ValueError, match="sarcoma and leiomyoma"):
        external.validation_metrics([80.0, 20.0], [True, True])
    found = external.validation_metrics([80.0, 20.0, 60.0], [True, False, False])
    assert found["likelihood"]["auc"] is None and found["likelihood"]["specificity"]["estimate"] == 0.5


def test_overlap_counts_same_case_identity_alias_and_person_but_not_empty_hashes():
    training = [CaseKeys(1, frozenset({"a1"}), "p1"), CaseKeys(2, frozenset({"b1", "b2"}), ""),
                CaseKeys(3, frozenset({"c1"}), "")]
    external_cases = [CaseKeys(3, frozenset({"c1"}), ""),                       # the same case
                      CaseKeys(10, frozenset({"x", "b2"}), ""),                 # an alias of case 2
                      CaseKeys(11, frozenset({"y"}), "p1"),                     # the same person
                      CaseKeys(12, frozenset({"z"}), ""), CaseKeys(13, frozenset({"w", ""}), "")]
    found = patient_overlap(external_cases, training)
    assert found.cases == (3, 10, 11) and found.total == 3
    assert (found.same_case, found.same_identity, found.same_person) == (1, 1, 1)   # strongest reason each
    assert "1 in both cohorts" in found.reasons() and "same person" in found.reasons()
    assert patient_overlap([CaseKeys(20, frozenset({""}), "")], [CaseKeys(21, frozenset({""}), "")]).total == 0


def test_figures_are_svg():
    found = external.validation_metrics(LIKELIHOOD, TRUTH, resamples=200)
    roc = external.roc_chart(found["roc"], auc=found["likelihood"]["auc"], synthetic=True)
    calibration = external.calibration_chart(found["calibration"], synthetic=True)
    assert roc.lstrip().startswith("<?xml") and "<svg" in roc and "SYNTHETIC" in roc
    assert "<svg" in calibration and "SYNTHETIC" in calibration


# --- the Django layer -------------------------------------------------------------------------------------------

@pytest.fixture
def media(tmp_path, settings, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)  # jobs run here, never on a broker
    return settings.MEDIA_ROOT


@pytest.fixture
def evaluation(media, transactional_db):
    run = fake_trained_run(make_cohort(), repeats=3)
    evaluation = services.evaluation_start(run=run, enqueue=False)
    job = jobs.job_run(job_pk=evaluation.job.pk, worker="test")
    assert job.status == JobStatus.SUCCEEDED, job.error
    evaluation.refresh_from_db()
    return evaluation


def external_cohort(name: str = "ext", *, extra=()):
    """SYNTHETIC external cohort: 4 bright-blob sarcomas, 4 dark-blob leiomyomas, one bright blob whose frozen truth
    is leiomyoma (the DNN gets it wrong), one case without tumour boxes (not scored); ``extra`` cases join too."""
    from imaging.models import Cohort, CohortCase

    cohort = Cohort.objects.create(name=name, frozen=True)
    cases = [(make_new_case(f"SYN-{name}-S{i}", truth=SARCOMA), SARCOMA) for i in range(4)]
    cases += [(make_new_case(f"SYN-{name}-L{i}", truth=LEIOMYOMA), LEIOMYOMA) for i in range(4)]
    cases += [(make_new_case(f"SYN-{name}-X0", truth=SARCOMA), LEIOMYOMA)]
    cases += [(make_new_case(f"SYN-{name}-N0", boxed=0, truth=LEIOMYOMA), LEIOMYOMA)]
    cases += [(case, case.truth) for case in extra]
    for case, truth in cases:
        CohortCase.objects.create(cohort=cohort, case=case, truth=truth)
    return cohort


@pytest.fixture
def fake_models(monkeypatch):
    """Stub of one model's prediction (SYNTHETIC): brighter crops are more sarcoma-like on the first sequence and less
    on the second (a case's crops come series by series: 3 T2axi, then 3 DWI), so the chosen set matters."""
    seen = []

    def predict(model, crops):
        seen.append((model.repeat, model.fold, crops.shape[0]))
        rng = np.random.default_rng(10 * model.repeat + model.fold)
        p = crops.reshape(crops.shape[0], -1).mean(axis=1) / 255.0
        p[crops.shape[0] // 2:] = 1.0 - p[crops.shape[0] // 2:]
        return np.clip(p + rng.normal(0, 0.15, crops.shape[0]), 0.01, 0.99).astype(np.float32)

    monkeypatch.setattr(runners, "predict_crops", predict)
    return seen


def run_validation(validation) -> ExternalValidation:
    job = jobs.job_run(job_pk=validation.job.pk, worker="test")
    assert job.status == JobStatus.SUCCEEDED, job.error
    validation.refresh_from_db()
    return validation


def test_a_cohort_sharing_a_patient_with_the_training_cohort_is_refused(evaluation):
    from imaging.models import CaseAlias

    training = list(evaluation.training_run.cohort.cases.order_by("pk"))
    training[0].person_hash = "9" * 64
    training[0].save(update_fields=["person_hash"])
    same_person = make_new_case("SYN-OV-P")
    same_person.person_hash = "9" * 64
    same_person.save(update_fields=["person_hash"])
    alias = make_new_case("SYN-OV-A")
    CaseAlias.objects.create(case=alias, identity_hash=training[1].source_key_hash)
    cohort = external_cohort("ov", extra=[same_person, alias, training[2]])
    with pytest.raises(ValidationError) as refused:
        services_external.external_validation_start(evaluation=evaluation, cohort=cohort, enqueue=False)
    message = " ".join(refused.value.messages)
    assert "shares 3 case(s)" in message and "1 in both cohorts" in message
    assert "1 the same patient identity" in message and "1 the same person" in message
    assert not any(c.pseudonym in message or c.source_key_hash in message for c in training)
    assert "9" * 16 not in message and ExternalValidation.objects.count() == 0


def test_only_the_person_hash_links_them_and_it_is_still_refused(evaluation):
    case = evaluation.training_run.cohort.cases.order_by("pk").first()
    case.person_hash = "7" * 64
    case.save(update_fields=["person_hash"])
    other = make_new_case("SYN-OV-Q")
    other.person_hash = "7" * 64
    other.save(update_fields=["person_hash"])
    with pytest.raises(ValidationError, match=r"shares 1 case\(s\).*same person"):
        services_external.external_validation_start(evaluation=evaluation, cohort=external_cohort("pq", extra=[other]),
                                                    enqueue=False)


def test_the_training_cohort_an_unfrozen_cohort_and_an_unfinished_evaluation_are_refused(evaluation):
    with pytest.raises(ValidationError, match="trained these models"):
        services_external.external_validation_start(evaluation=evaluation, cohort=evaluation.training_run.cohort,
                                                    enqueue=False)
    cohort = external_cohort("uf")
    cohort.frozen = False
    cohort.save(update_fields=["frozen"])
    with pytest.raises(ValidationError, match="not frozen"):
        services_external.external_validation_start(evaluation=evaluation, cohort=cohort, enqueue=False)
    cohort.frozen = True
    cohort.save(update_fields=["frozen"])
    evaluation.status = evaluation.Status.RUNNING
    evaluation.save(update_fields=["status"])
    with pytest.raises(ValidationError, match="not done"):
        services_external.external_validation_start(evaluation=evaluation, cohort=cohort, enqueue=False)


def test_the_job_applies_the_frozen_set_to_every_case_with_truthful_progress(evaluation, fake_models, monkeypatch):
    cohort = external_cohort()
    validation = services_external.external_validation_start(evaluation=evaluation, cohort=cohort, enqueue=False)
    chosen = evaluation.results["chosen"]
    assert validation.frozen["thresholds"] == chosen["thresholds"] and validation.frozen["codes"] == chosen["codes"]
    n_models = evaluation.training_run.models.count()
    assert validation.job.kind == "external_validation" and validation.job.total == 10 * n_models + 1
    seen_done = []
    progress = jobs.JobContext.progress

    def record(self, done=None, total=None, step=None, force=False):
        seen_done.append(done if done is not None else self.job.done)
        return progress(self, done=done, total=total, step=step, force=force)

    monkeypatch.setattr(jobs.JobContext, "progress", record)
    validation = run_validation(validation)
    assert validation.status == ExternalValidation.Status.DONE
    assert seen_done == sorted(seen_done) and seen_done[-1] == validation.job.total == 10 * n_models + 1
    assert len(fake_models) == 9 * n_models                   # every model, every case with tumour slices, once

    results = validation.results
    assert results["synthetic"] is True and results["n_cases"] == 10 and results["n_scored"] == 9
    assert results["not_scored"] == [{"case": "SYN-ext-N0", "truth": LEIOMYOMA,
                                      "reason": "no tumour box on a series mapped to a sequence code"}]
    by_case = {row["case"]: row for row in results["cases"]}
    assert by_case["SYN-ext-X0"]["truth"] == LEIOMYOMA and not by_case["SYN-ext-X0"]["correct"]
    # the new-patient path with the evaluation's set gives the same likelihood for every case
    for case in cohort.cases.exclude(pseudonym="SYN-ext-N0"):
        stored = np.load(selectors.case_prediction_path(evaluation, case.pk))
        shown = services.write_deployment_result(evaluation, case.pk, stored["fold_probs"], stored["sequence_idx"])
        assert by_case[case.pseudonym]["likelihood_percent"] == pytest.approx(shown.likelihood)
        assert by_case[case.pseudonym]["call"] == (SARCOMA if shown.likelihood >= 50 else LEIOMYOMA)
    metrics = results["metrics"]
    likelihood = np.array([r["likelihood_percent"] for r in results["cases"]])
    truth = np.array([r["truth"] == SARCOMA for r in results["cases"]])
    calls = likelihood >= 50
    assert metrics["likelihood"]["sensitivity"] == wilson(int((calls & truth).sum()), int(truth.sum())).as_dict()
    assert metrics["likelihood"]["specificity"] == wilson(int((~calls & ~truth).sum()), int((~truth).sum())).as_dict()
    assert metrics["n_sarcoma"] == 4 and metrics["n_leiomyoma"] == 5 and metrics["ensembles"]["n_members"] == 3
    assert sum(b["n"] for b in metrics["calibration"]) == 9


def test_the_set_and_thresholds_stay_frozen_and_a_second_validation_reuses_the_predictions(evaluation, fake_models):
    cohort = external_cohort()
    first = run_validation(services_external.external_validation_start(evaluation=evaluation, cohort=cohort,
                                                                       enqueue=False))
    second = services_external.external_validation_start(evaluation=evaluation, cohort=cohort, enqueue=False)
    other = ["DWI"] if evaluation.chosen_subset != ["DWI"] else ["T2axi"]
    services.evaluation_choose_subset(evaluation=evaluation, subset=other)   # after the start: changes nothing
    fake_models.clear()
    second = run_validation(second)
    assert fake_models == [] and second.job.result["predictions"] == {"reused": 9, "predicted": 0}
    assert second.frozen == first.frozen and second.frozen["codes"] != evaluation.chosen_subset
    assert second.results["cases"] == first.results["cases"]
    assert second.results["metrics"] == first.results["metrics"]
    assert not CaseAIResult.objects.filter(evaluation=evaluation, case__cohorts=cohort).exists()


def test_an_overlap_appearing_after_the_start_fails_the_job(evaluation, fake_models):
    from imaging.models import CaseAlias

    cohort = external_cohort()
    validation = services_external.external_validation_start(evaluation=evaluation, cohort=cohort, enqueue=False)
    training_case = evaluation.training_run.cohort.cases.first()
    CaseAlias.objects.create(case=cohort.cases.first(), identity_hash=training_case.source_key_hash)
    job = jobs.job_run(job_pk=validation.job.pk, worker="test")
    validation.refresh_from_db()
    assert job.status == JobStatus.FAILED and "shares 1 case(s)" in job.error
    assert validation.status == ExternalValidation.Status.FAILED and fake_models == []


def test_pages_figures_csv_and_json_for_coordinators(evaluation, fake_models, client, coordinator):
    validation = run_validation(services_external.external_validation_start(
        evaluation=evaluation, cohort=external_cohort(), enqueue=False))
    client.force_login(coordinator)
    assert "External validations" in client.get("/inference/evaluations/").content.decode()
    assert validation.name in client.get("/inference/external/").content.decode()
    html = client.get(f"/inference/external/{validation.pk}/").content.decode()
    sensitivity = validation.results["metrics"]["likelihood"]["sensitivity"]
    assert "95 % CI" in html and f"{100 * sensitivity['ci_low']:.1f}–{100 * sensitivity['ci_high']:.1f} %" in html
    assert "SYN-ext-X0" in html and "synthetic data" in html and "DeLong" in html
    assert all(c.source_key_hash not in html for c in validation.cohort.cases.all())
    for name in ("roc", "calibration"):
        response = client.get(f"/inference/external/{validation.pk}/figures/{name}.svg")
        assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
        assert b"<svg" in response.content
    rows = list(csv.reader(io.StringIO(client.get(f"/inference/external/{validation.pk}/cases.csv").content.decode())))
    assert rows[0][:4] == ["case", "truth", "likelihood_percent", "call"] and len(rows) == 1 + 10
    x0 = next(r for r in rows if r[0] == "SYN-ext-X0")
    assert x0[1] == LEIOMYOMA and x0[4] == "0" and rows[-1][-1].startswith("no tumour box")
    metrics = list(csv.reader(io.StringIO(
        client.get(f"/inference/external/{validation.pk}/metrics.csv").content.decode())))
    ss = next(r for r in metrics if r[1] == "ss_avg" and r[0].startswith("majority"))
    assert float(ss[3]) <= float(ss[2]) <= float(ss[4]) and "bootstrap" in ss[5]
    data = client.get(f"/api/inference/external/{validation.pk}/").json()
    assert data["status"] == "done" and data["cohort"] == "ext" and len(data["results"]["cases"]) == 9
    assert client.get("/api/inference/external/").json()["count"] == 1
    assert client.get("/inference/external/new/").status_code == 403      # coordinators do not start gpu jobs
    assert client.get(f"/inference/external/{validation.pk}/nope.csv").status_code == 404


def test_readers_never_see_external_validations(evaluation, fake_models, client, reader):
    validation = run_validation(services_external.external_validation_start(
        evaluation=evaluation, cohort=external_cohort(), enqueue=False))
    client.force_login(reader)
    assert client.get("/inference/external/").status_code == 403
    assert client.get("/inference/external/new/").status_code == 403
    for url in (f"/inference/external/{validation.pk}/", f"/inference/external/{validation.pk}/cases.csv",
                f"/inference/external/{validation.pk}/metrics.csv",
                f"/inference/external/{validation.pk}/figures/roc.svg", f"/api/inference/external/{validation.pk}/"):
        assert client.get(url).status_code == 404, url
    assert client.get("/api/inference/external/").json()["count"] == 0


def test_an_admin_starts_one_from_the_form_and_an_overlapping_cohort_is_shown_on_the_form(evaluation, client,
                                                                                         admin_user):
    cohort = external_cohort()
    client.force_login(admin_user)
    assert "validate externally" in client.get("/inference/evaluations/").content.decode()
    page = client.get(f"/inference/external/new/?evaluation={evaluation.pk}").content.decode()
    assert evaluation.name in page and cohort.name in page
    response = client.post("/inference/external/new/", {"evaluation": evaluation.pk, "cohort": cohort.pk})
    validation = ExternalValidation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/inference/external/{validation.pk}/"
    assert validation.created_by == admin_user and validation.status == ExternalValidation.Status.PENDING
    pending = client.get(f"/inference/external/{validation.pk}/").content.decode()
    assert 'data-status="pending"' in pending and f"Job {validation.job_id}" in pending   # its progress, no metrics
    assert "external-metrics" not in pending
    assert client.get(f"/inference/external/{validation.pk}/figures/roc.svg").status_code == 404
    admin_user.is_superuser = True          # the Django admin's model pages go by model permissions
    admin_user.save(update_fields=["is_superuser"])
    assert validation.name in client.get("/admin/inference/externalvalidation/").content.decode()
    assert client.get(f"/admin/inference/externalvalidation/{validation.pk}/change/").status_code == 200
    html = client.post("/inference/external/new/", {"evaluation": evaluation.pk,
                                                    "cohort": evaluation.training_run.cohort.pk}).content.decode()
    assert "trained these models" in html and ExternalValidation.objects.count() == 1


def test_a_correction_of_an_external_case_marks_the_validation_stale_and_its_page_says_so(evaluation, fake_models,
                                                                                         client, coordinator):
    from django.db import transaction
    from django.utils import timezone

    from imaging.services import mark_built_on_stale

    cohort = external_cohort()
    validation = run_validation(services_external.external_validation_start(evaluation=evaluation, cohort=cohort,
                                                                            enqueue=False))
    untouched = run_validation(services_external.external_validation_start(
        evaluation=evaluation, cohort=external_cohort("other"), enqueue=False))
    with transaction.atomic():       # as every correction calls it: inside the change's transaction
        affected = mark_built_on_stale(cohort.cases.first(), "truth corrected (synthetic)", at=timezone.now())
    assert f"external validation {validation.name}" in affected
    validation.refresh_from_db()
    untouched.refresh_from_db()
    assert validation.stale_since is not None and "truth corrected" in validation.stale_reason
    assert untouched.stale_since is None
    client.force_login(coordinator)
    page = client.get(reverse("inference_external_validation", args=[validation.pk])).content.decode()
    assert 'id="stale-banner"' in page and "truth corrected (synthetic)" in page


def test_the_command_runs_one_inline_and_refuses_an_overlapping_cohort(evaluation, fake_models):
    from django.core.management import CommandError, call_command

    cohort = external_cohort("cli")
    out = io.StringIO()
    call_command("validate_external", evaluation=evaluation.pk, cohort="cli", inline=True, stdout=out)
    text = out.getvalue()
    validation = ExternalValidation.objects.get(cohort=cohort)
    assert validation.status == ExternalValidation.Status.DONE
    assert f"external validation {validation.pk} of evaluation {evaluation.pk}" in text
    assert "9 of 10 cases scored: ss_avg" in text and "(95% CIs)" in text and "not scored: SYN-cli-N0" in text
    with pytest.raises(CommandError, match="trained these models"):
        call_command("validate_external", evaluation=evaluation.pk, cohort=evaluation.training_run.cohort.name,
                     inline=True, stdout=io.StringIO())
    with pytest.raises(CommandError, match="no cohort named 'nope'"):
        call_command("validate_external", evaluation=evaluation.pk, cohort="nope", stdout=io.StringIO())
