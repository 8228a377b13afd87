"""`manage.py job list|show|cancel|resume|wait|check` — jobs from the command line."""

import json

from django.core.management.base import BaseCommand, CommandError

from jobs import cli, services
from jobs.models import Job


class Command(BaseCommand):
    help = "List, show, cancel, resume or wait for jobs; `check` starts a worker check job."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="the 30 most recent jobs")
        for action in ("show", "cancel", "resume", "wait"):
            sub.add_parser(action).add_argument("job_id", type=int)
            if action == "resume":
                cli.add_job_arguments(sub.choices[action])
        check = sub.add_parser("check", help="check a worker: database, media, Keras backend, throughput")
        check.add_argument("--gpu", action="store_true", help="run on the gpu queue")
        check.add_argument("--seconds", type=int, default=5)
        check.add_argument("--no-keras", action="store_true", help="skip the deep-learning backend check")
        cli.add_job_arguments(check)

    def handle(self, *args, action, **options):
        if action == "list":
            for job in Job.objects.all()[:30]:
                self.stdout.write(f"{job.pk:>6} {job.kind:<20} {job.display_status:<12} {job.percent:5.1f}% {job.step}")
            return
        if action == "check":
            params = {"seconds": options["seconds"], "keras": not options["no_keras"]}
            cli.start(self, kind="worker_check_gpu" if options["gpu"] else "worker_check", params=params,
                      options=options)
            return
        job = Job.objects.filter(pk=options["job_id"]).first()
        if job is None:
            raise CommandError(f"no job {options['job_id']}")
        if action == "show":
            fields = ("kind", "status", "done", "total", "step", "error", "params", "result", "worker", "attempts")
            data = {f: getattr(job, f) for f in fields} | {"display_status": job.display_status}
            self.stdout.write(json.dumps(data, indent=2, default=str))
        elif action == "cancel":
            job = services.job_cancel(job=job)
            self.stdout.write(f"job {job.pk}: {job.display_status} (cancel requested)")
        elif action == "resume":
            if options["inline"]:
                cli.refuse_without_secrets()
            try:
                job = services.job_resume(job=job, enqueue=not options["inline"])
            except services.JobError as exc:
                raise CommandError(str(exc)) from None
            if options["inline"] or options["wait"]:
                cli.follow(self, job, options)
            else:
                self.stdout.write(f"job {job.pk} queued again; follow it with `manage.py job wait {job.pk}`")
        elif action == "wait":
            cli.report(self, cli.wait(job, cli.ProgressBar(self.stdout)))
