"""Demo steps of the imaging app (``make demo``): a SYNTHETIC phantom cohort, imported once, and its
cohort array store. Both are idempotent: a second ``make demo`` finds them and does nothing."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.conf import settings

DEMO_PATIENTS = 60
DEMO_SARCOMA_FRACTION = 0.25
DEMO_SEED = 2026
DEMO_LABEL = f"demo: synthetic phantom cohort ({DEMO_PATIENTS} patients, seed {DEMO_SEED})"
DEMO_COHORT = "demo-phantoms"


def _run_inline(kind: str, params: dict):
    from jobs.services import job_create, job_run_inline

    job = job_create(kind=kind, params=params, enqueue=False)
    return job_run_inline(job_pk=job.pk)


def demo_phantoms_import(say) -> None:
    """Generate the phantom cohort and import it with its manifest and boxes, unless already done."""
    from imaging.models import Case, ImportBatch
    from imaging.phantoms import write_phantom_cohort
    from imaging.services import import_params

    done = ImportBatch.objects.filter(source_label=DEMO_LABEL, job__status="succeeded").first()
    if done is not None:
        say(f"already imported ({Case.objects.filter(is_synthetic=True).count()} synthetic cases)")
        return
    Path(settings.UPLOAD_ROOT).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="demo-phantoms-", dir=settings.UPLOAD_ROOT))
    try:
        say(f"generating {DEMO_PATIENTS} synthetic patients (seed {DEMO_SEED}) ...")
        summary = write_phantom_cohort(
            root / "cohort", patients=DEMO_PATIENTS, sarcoma_fraction=DEMO_SARCOMA_FRACTION, seed=DEMO_SEED
        )
        say(f"importing {summary.instances} files ...")
        params = import_params(
            source=summary.dicom_dir,
            manifest=summary.manifest_path,
            boxes=summary.boxes_path,
            label=DEMO_LABEL,
        )
        job = _run_inline("import_dicom", params)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = job.result or {}
    if job.status != "succeeded":
        say(f"import failed: {job.error}")
        return
    say(
        f"imported {result.get('cases')} cases, {result.get('series')} series, "
        f"{result.get('slices')} slices, "
        f"{result.get('files_rejected')} files rejected (job {job.pk})"
    )


DEMO_INPUT_SIZE = 96


def demo_cohort_build(say) -> None:
    """Freeze the synthetic cases with ground truth as cohort ``demo-phantoms`` and build its store."""
    from imaging.models import Case, Cohort
    from imaging.services_cohorts import cohort_create

    cohort = Cohort.objects.filter(name=DEMO_COHORT).first()
    if cohort is not None and cohort.content_hash:
        say(f"cohort {DEMO_COHORT} already built ({cohort.n_slices} slices, {cohort.content_hash[:19]}...)")
        return
    if cohort is None:
        cases = Case.objects.usable().filter(is_synthetic=True).exclude(truth="")
        if not cases.exists():
            say("no synthetic cases with ground truth: skipped")
            return
        cohort = cohort_create(
            name=DEMO_COHORT,
            cases=cases,
            description="SYNTHETIC phantom cohort of the demo (not patient data); 96-pixel crops so the demo "
                        "ensemble trains in minutes on a CPU (real cohorts use 224)",
            input_size=DEMO_INPUT_SIZE,
        )
    job = _run_inline("cohort_build", {"cohort": cohort.pk})
    if job.status != "succeeded":
        say(f"cohort build failed: {job.error}")
        return
    say(f"cohort {DEMO_COHORT}: {job.result.get('n_slices')} tumour slices, {job.result.get('content_hash')}")
