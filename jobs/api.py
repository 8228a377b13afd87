"""Job API: list, detail (polled by the job page), cancel, resume."""

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response

from accounts.roles import is_admin
from jobs import selectors, services
from jobs.models import Job


class JobSerializer(serializers.ModelSerializer):
    display_status = serializers.CharField(read_only=True)
    percent = serializers.FloatField(read_only=True)
    worker_lost = serializers.BooleanField(read_only=True)
    can_resume = serializers.BooleanField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Job
        fields = ("id", "kind", "status", "display_status", "done", "total", "percent", "step", "error",
                  "cancel_requested", "worker_lost", "can_resume", "result", "params", "created_by",
                  "created_at", "started_at", "finished_at", "heartbeat_at", "attempts")
        read_only_fields = fields


class JobListApi(ListAPIView):
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.jobs_visible_to(self.request.user)


class JobDetailApi(RetrieveAPIView):
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.jobs_visible_to(self.request.user)


def _job_or_404(user, pk: int) -> Job:
    try:
        return selectors.job_for_user(user, pk)
    except ObjectDoesNotExist:
        raise NotFound(f"no job {pk}") from None


@extend_schema(request=None, responses=JobSerializer)
@api_view(["POST"])
def job_cancel_api(request, pk: int):
    job = services.job_cancel(job=_job_or_404(request.user, pk))
    return Response(JobSerializer(job).data)


@extend_schema(request=None, responses=JobSerializer)
@api_view(["POST"])
def job_resume_api(request, pk: int):
    job = _job_or_404(request.user, pk)
    if not is_admin(request.user) and job.created_by_id != request.user.pk:
        raise PermissionDenied("only an admin or the job's owner can resume it")
    try:
        job = services.job_resume(job=job)
    except services.JobError as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response(JobSerializer(job).data)
