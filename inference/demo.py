"""The demo ensemble of `make demo`: a small, quickly trained ensemble on the SYNTHETIC demo cohort.

Not the paper's protocol (24 repeats × 6 folds, 50 epochs of 35,000 samples at 224 px would take weeks on a
CPU): 2 repeats × 6 folds, one short epoch, 96-pixel crops, width 0.35, so that exam 2 of the demo study has
AI results to show within minutes. Its name says so everywhere it appears. Idempotent.
"""

from imaging.models import Cohort
from inference.models import Evaluation
from jobs import services as jobs
from training.models import TrainingRun

DEMO_COHORT = "demo-phantoms"
DEMO_RUN = "demo ensemble (tiny, synthetic)"
DEMO_CONFIG = {"epochs": 1, "samples_per_epoch": 256, "batch_size": 16, "learning_rate": 1e-3, "width": 0.35,
               "batchnorm_momentum": 0.0, "run_eagerly": True, "eval_max_slices": 64}
DEMO_REPEATS = 2


def _run_job_inline(job_pk: int, say, what: str) -> bool:
    from jobs.models import Job

    if Job.objects.get(pk=job_pk).can_resume:  # an earlier `make demo` was interrupted or failed
        jobs.job_resume(job=Job.objects.get(pk=job_pk))
    job = jobs.job_run_inline(job_pk=job_pk)
    job.refresh_from_db()
    if job.status != "succeeded":
        say(f"{what} did not finish ({job.display_status}): {job.error}")
        return False
    return True


def demo_ensemble(say) -> None:
    """Train the demo ensemble and evaluate it, once; skipped until the demo cohort is built."""
    from inference.services import evaluation_start
    from training.services import training_run_start

    cohort = Cohort.objects.filter(name=DEMO_COHORT).exclude(content_hash="").first()
    if cohort is None:
        say("no built demo cohort yet: demo ensemble skipped")
        return
    done = Evaluation.objects.filter(training_run__cohort=cohort, status=Evaluation.Status.DONE).first()
    if done is not None:
        say(f"evaluation {done.name!r} exists")
        return
    run = TrainingRun.objects.filter(cohort=cohort, name=DEMO_RUN).first()
    if run is None:
        run = training_run_start(cohort=cohort, config=DEMO_CONFIG, repeats=DEMO_REPEATS, name=DEMO_RUN, enqueue=False)
    say(f"training {run.models.count()} small models on the CPU (a few minutes, once) ...")
    if run.models.exclude(status="done").exists() and not _run_job_inline(run.job_id, say, "demo training"):
        return
    evaluation = evaluation_start(run=run, name=f"{DEMO_RUN} · mean", enqueue=False)
    if _run_job_inline(evaluation.job_id, say, "demo evaluation"):
        evaluation.refresh_from_db()
        say(f"evaluation {evaluation.name!r}: AI results for {evaluation.case_results.count()} cases, "
            f"chosen sequences {', '.join(evaluation.chosen_subset)}")
