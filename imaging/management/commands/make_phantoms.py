"""`manage.py make_phantoms OUTDIR --patients N --sarcoma-fraction F --seed S`: a SYNTHETIC DICOM cohort."""

from django.core.management.base import BaseCommand, CommandError

from imaging.phantoms import write_phantom_cohort


class Command(BaseCommand):
    help = (
        "Write a SYNTHETIC phantom cohort: one MR study per patient with fake identifiers, plus "
        "manifest.csv, "
        "series.csv and boxes.csv. Same arguments, same bytes."
    )

    def add_arguments(self, parser):
        parser.add_argument("outdir")
        parser.add_argument("--patients", type=int, default=60)
        parser.add_argument("--sarcoma-fraction", type=float, default=0.25)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--difficulty",
            type=float,
            default=0.5,
            help="0..1: how much degenerated leiomyomas mimic sarcomas",
        )
        parser.add_argument("--slice-size", type=int, default=128, help="rows = columns, pixels")
        parser.add_argument("--slices-per-series", type=int, default=16)
        parser.add_argument("--no-overlays", action="store_true", help="do not write the 60xx overlay")
        parser.add_argument(
            "--overwrite", action="store_true", help="replace an earlier phantom cohort in OUTDIR"
        )

    def handle(self, *args, **o):
        tty = self.stdout.isatty()

        def progress(done: int, total: int) -> None:
            if o["verbosity"] > 0:  # one line redrawn on a terminal; a line per patient when piped or logged
                self.stdout.write(f"\rpatients {done}/{total}" if tty else f"patients {done}/{total}",
                                  ending="" if tty else "\n")
                self.stdout.flush()

        try:
            summary = write_phantom_cohort(
                o["outdir"],
                patients=o["patients"],
                sarcoma_fraction=o["sarcoma_fraction"],
                seed=o["seed"],
                difficulty=o["difficulty"],
                slice_size=o["slice_size"],
                slices_per_series=o["slices_per_series"],
                overlays=not o["no_overlays"],
                overwrite=o["overwrite"],
                progress=progress,
            )
        except (ValueError, FileExistsError) as error:
            raise CommandError(str(error).replace("pass overwrite=True", "pass --overwrite")) from None
        if tty:
            self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"SYNTHETIC cohort in {summary.outdir}: {summary.patients} patients "
                f"({summary.sarcomas} sarcoma, "
                f"{summary.leiomyomas} leiomyoma), {summary.series} series, {summary.instances} files"
            )
        )
        self.stdout.write(
            f"import it with: manage.py import_dicom {summary.dicom_dir} --manifest "
            f"{summary.manifest_path} --boxes {summary.boxes_path} --wait"
        )
