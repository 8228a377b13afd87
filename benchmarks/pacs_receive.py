"""DICOM reception speed (issue 17, item 5): instances/s received over C-STORE against the folder import, same run.

Generates a SYNTHETIC phantom cohort per slice size (uncompressed, Explicit VR Little Endian), then for each size:

1. the folder import (`import_dicom` job run inline, one reader process): instances/s;
2. the same files sent over C-STORE by a pynetdicom SCU on loopback (one association) to the platform's listener
   (`imaging.dicom_listener`, in this process): instances/s received — each read, validated, classified and
   de-identified in memory and recorded (`imaging.received`) — then the import of the received records, and the
   two together.

Runs in a throwaway data folder (its own SQLite database, media and uploads). Generation is not timed.

    .venv/bin/python benchmarks/pacs_receive.py --sizes 256 512 --patients 2
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _send(port: int, files: list[Path], our_ae: str) -> float:
    """Seconds to C-STORE every file over one association (the SCU reads each file just before sending it; its
    socket has TCP_NODELAY, as DCMTK-based PACSes such as Orthanc set it)."""
    import pydicom
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import MRImageStorage

    from imaging.dicom_listener import no_delay

    ae = AE(ae_title="BENCHPACS")
    ae.add_requested_context(MRImageStorage, ["1.2.840.10008.1.2.1"])
    association = ae.associate("127.0.0.1", port, ae_title=our_ae, max_pdu=0,
                               evt_handlers=[(evt.EVT_CONN_OPEN, no_delay)])   # as PACSes do (DCMTK's default)
    if not association.is_established:
        raise SystemExit("the listener refused the benchmark's association")
    started = time.perf_counter()
    try:
        for path in files:
            status = association.send_c_store(pydicom.dcmread(path))
            if status.Status != 0:
                raise SystemExit(f"instance refused: status 0x{status.Status:04X} {status.get('ErrorComment', '')}")
    finally:
        association.release()
    return time.perf_counter() - started


def _measure(root: Path, size: int, args) -> dict:
    from imaging.dicom_listener import Listener
    from imaging.models import Case
    from imaging.phantoms import write_phantom_cohort
    from imaging.services import import_params
    from jobs.models import Job
    from jobs.services import job_create, job_run

    cohort = write_phantom_cohort(root / f"cohort-{size}", patients=args.patients, sarcoma_fraction=0.5,
                                  seed=args.seed, slice_size=size, slices_per_series=args.slices_per_series)
    files = sorted(cohort.dicom_dir.rglob("*.dcm"))
    megabytes = sum(p.stat().st_size for p in files) / 1e6

    Case.objects.all().delete()
    job = job_create(kind="import_dicom", params=import_params(source=cohort.dicom_dir, workers=1), enqueue=False)
    started = time.perf_counter()
    job = job_run(job_pk=job.pk, worker="benchmark")
    folder_s = time.perf_counter() - started
    assert job.status == "succeeded", job.error

    Case.objects.all().delete()
    listener = Listener(ae_title="SARCOMA_RS", port=0, host="127.0.0.1", inline=False, quiet_seconds=3600).start()
    try:
        received_s = _send(listener.port, files, listener.ae_title)
    finally:
        listener.stop()
    job_pks = listener.flush(force=True)                  # one import per study (patient)
    started = time.perf_counter()
    jobs = [job_run(job_pk=pk, worker="benchmark") for pk in job_pks]
    import_s = time.perf_counter() - started
    assert all(j.status == "succeeded" for j in jobs), [j.error for j in jobs]
    assert sum(j.result["files_imported"] for j in jobs) == len(files)
    Job.objects.all().delete()
    n = len(files)
    return {"slice_size": size, "instances": n, "megabytes": round(megabytes, 1),
            "folder_import_instances_per_s": round(n / folder_s, 1),
            "cstore_received_instances_per_s": round(n / received_s, 1),
            "received_import_instances_per_s": round(n / import_s, 1),
            "cstore_end_to_end_instances_per_s": round(n / (received_s + import_s), 1),
            "end_to_end_over_folder_import": round(folder_s / (received_s + import_s), 2),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="slice sizes (rows = columns)")
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--slices-per-series", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from benchmarks.throwaway import throwaway_django

    root = throwaway_django("pacs-receive-")
    from imaging import nodes

    try:
        nodes.dicom_node_add(name="bench", ae_title="BENCHPACS", host="127.0.0.1", port=104)
        runs = []
        for size in args.sizes:
            run = _measure(root, size, args)
            runs.append(run)
            print(f"{size}x{size}: {run['instances']} instances ({run['megabytes']} MB): folder import "
                  f"{run['folder_import_instances_per_s']}/s; C-STORE received "
                  f"{run['cstore_received_instances_per_s']}/s, "
                  f"then imported {run['received_import_instances_per_s']}/s, end to end "
                  f"{run['cstore_end_to_end_instances_per_s']}/s (x{run['end_to_end_over_folder_import']} of the "
                  f"folder import); load average {run['load_average_1min']}")
        print(json.dumps({"benchmark": "pacs_receive", "cpu_count": os.cpu_count(), "runs": runs}, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
