"""Job API: list, detail (polled by the job page), cancel, resume. Output: jobs/serializers.py."""

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response

from accounts.roles import is_admin
from core.serializers import errors
from jobs import selectors, services
from jobs.models import Job
from jobs.serializers import JobSerializer


@extend_schema_view(get=extend_schema(responses={200: JobSerializer(many=True), **errors(400, 403)}))
class JobListApi(ListAPIView):
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.jobs_visible_to(self.request.user)


@extend_schema_view(get=extend_schema(responses={200: JobSerializer, **errors(403, 404)}))
class JobDetailApi(RetrieveAPIView):
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.jobs_visible_to(self.request.user)


def _job_or_404(user, pk: int) -> Job:
    try:
        return selectors.job_for_user(user, pk)
    except ObjectDoesNotExist:
        raise NotFound(f"no job {pk}") from None


@extend_schema(request=None, responses={200: JobSerializer, **errors(403, 404)})
@api_view(["POST"])
def job_cancel_api(request, pk: int):
    job = services.job_cancel(job=_job_or_404(request.user, pk))
    return Response(JobSerializer(job).data)


@extend_schema(request=None, responses={200: JobSerializer, **errors(403, 404, 409)})
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
