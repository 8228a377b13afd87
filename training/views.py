"""Training pages: start a run (admins), a run's page with its repeat × fold grid, a model card."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from accounts.permissions import role_required
from accounts.roles import ADMIN, COORDINATOR, is_admin
from core.views import form_page
from training import selectors, services
from training.card_page import card_page
from training.forms import TrainingStartForm


@role_required(COORDINATOR, "training runs are for coordinators and admins")
def run_list(request):
    runs = selectors.runs_visible_to(request.user)
    return render(request, "training/run_list.html", {"runs": runs[:100], "can_start": is_admin(request.user)})


@role_required(ADMIN, "starting training is for admins")
def run_start(request):
    form = TrainingStartForm(request.POST or None)
    return form_page(request, form, "training/run_start.html", lambda data: services.training_run_start(
        cohort=data["cohort"], config=form.config(), repeats=data["repeats"], seed=data["seed"], name=data["name"],
        user=request.user, folds=data["folds"]), then="training_run",
        message=lambda run: f"training run {run.name}: {run.models.count()} models queued")


@login_required
def run_detail(request, pk: int):
    run = get_object_or_404(selectors.runs_visible_to(request.user), pk=pk)
    return render(request, "training/run_detail.html", {"run": run, "grid": selectors.model_grid(run)})


@login_required
def model_detail(request, pk: int):
    model = get_object_or_404(selectors.models_visible_to(request.user), pk=pk)
    page = card_page(card=model.card or {}, history=model.history or [], metrics=model.metrics or {},
                     config=model.run.config or {})
    return render(request, "training/model_detail.html", {"model": model, "page": page})
