"""Import speed: slices per second for uncompressed MR through the whole import_dicom job.

Generates a SYNTHETIC phantom cohort (Explicit VR Little Endian, uncompressed), then times the import
job run inline: validation, pixel decoding, sequence classification, de-identification, series
grouping, volume encoding and gzip, database writes, manifest and boxes. Generation is not timed.
Runs in a throwaway data folder (its own SQLite database, media and uploads), so it touches nothing.

    .venv/bin/python benchmarks/import_speed.py --patients 4 --slice-size 256 --workers 2

Prints one line per run and a JSON summary. Target (issue 3): >= 100 slices/s on 2 cores. Wall-clock
rates depend on what else the machine runs, so each run also reports its CPU time (this process and
its reader processes) and slices per CPU-second: the rate of one unloaded core.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the reader processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=4)
    parser.add_argument("--slice-size", type=int, default=256, help="rows = columns")
    parser.add_argument("--slices-per-series", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="reader processes to try")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from benchmarks.throwaway import throwaway_django

    root = throwaway_django("import-speed-")
    from imaging.phantoms import write_phantom_cohort
    from imaging.services import import_params
    from jobs.services import job_create, job_run

    try:
        started = time.perf_counter()
        cohort = write_phantom_cohort(
            root / "cohort",
            patients=args.patients,
            sarcoma_fraction=0.25,
            seed=args.seed,
            slice_size=args.slice_size,
            slices_per_series=args.slices_per_series,
        )
        size_mb = sum(p.stat().st_size for p in cohort.dicom_dir.rglob("*.dcm")) / 1e6
        print(
            f"generated {cohort.instances} files ({size_mb:.0f} MB, {args.slice_size}x{args.slice_size}) "
            f"in {time.perf_counter() - started:.1f} s (not timed below)"
        )
        runs = []
        for workers in args.workers:
            from imaging.models import Case

            Case.objects.all().delete()
            shutil.rmtree(root / "var" / "media", ignore_errors=True)
            params = import_params(
                source=cohort.dicom_dir,
                manifest=cohort.manifest_path,
                boxes=cohort.boxes_path,
                workers=workers,
            )
            job = job_create(kind="import_dicom", params=params, enqueue=False)
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            job = job_run(job_pk=job.pk, worker="benchmark")
            seconds = time.perf_counter() - started
            cpu = _cpu_seconds() - cpu_before
            if job.status != "succeeded":
                raise SystemExit(f"import failed: {job.error}")
            slices = job.result["slices"]
            run = {
                "workers": workers,
                "files": job.result["files_imported"],
                "slices": slices,
                "rejected": job.result["files_rejected"],
                "seconds": round(seconds, 2),
                "slices_per_s": round(slices / seconds, 1),
                "cpu_seconds": round(cpu, 2),
                "slices_per_cpu_s": round(slices / cpu, 1),
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
            runs.append(run)
            print(
                f"workers={workers}: {slices} slices in {seconds:.1f} s = {slices / seconds:.0f} slices/s "
                f"({run['rejected']} rejected); {cpu:.1f} CPU-s = {slices / cpu:.0f} slices per CPU-second; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
        print(
            json.dumps(
                {
                    "benchmark": "import_speed",
                    "cpu_count": os.cpu_count(),
                    "slice_size": args.slice_size,
                    "patients": args.patients,
                    "runs": runs,
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
