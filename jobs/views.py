"""Job pages: one job with a live progress bar (it polls the API) and what its result says (jobs/outcome.py), and
the list for admins."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import role_required
from accounts.roles import ADMIN
from core.views import found_or_404
from jobs import registry, selectors, services
from jobs.outcome import job_outcome


@role_required(ADMIN, "the job list is for admins")
def job_list(request):
    jobs = selectors.jobs_visible_to(request.user)
    kind = request.GET.get("kind")
    if kind:
        jobs = jobs.filter(kind=kind)
    return render(request, "jobs/job_list.html", {"jobs": jobs[:200], "kinds": registry.all_kinds(), "kind": kind})


@login_required
def job_detail(request, pk: int):
    job = found_or_404(selectors.job_for_user, request.user, pk, message="no such job")
    return render(request, "jobs/job_detail.html", {"job": job, "outcome": job_outcome(job.result)})


@role_required(ADMIN, "starting a worker check is for admins")
@require_POST
def worker_check_start(request):
    kind = "worker_check_gpu" if request.POST.get("queue") == "gpu" else "worker_check"
    job = services.job_create(kind=kind, params={"seconds": 5, "keras": True}, user=request.user)
    return redirect("job_detail", pk=job.pk)
