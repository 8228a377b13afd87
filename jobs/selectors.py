"""Reads on jobs, with the permission filter built in."""

from django.db.models import QuerySet

from accounts.roles import is_admin
from jobs.models import Job


def jobs_visible_to(user) -> QuerySet[Job]:
    """Admins see every job; everyone else the jobs they started."""
    if not user.is_authenticated:
        return Job.objects.none()
    qs = Job.objects.select_related("created_by")
    return qs if is_admin(user) else qs.filter(created_by=user)


def job_for_user(user, pk: int) -> Job:
    return jobs_visible_to(user).get(pk=pk)
