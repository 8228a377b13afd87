"""Reads on accounts: the accounts locked out by login throttling (accounts/lockout.py) that a user may unlock."""

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, Sum
from django.utils import timezone

from accounts import roles


def locked_users_visible_to(viewer) -> list[dict]:
    """The existing accounts locked out now, each ``{"user", "failures", "last_failure", "locked_until"}``,
    newest failure first: every one for an admin, readers (and users without a role) for a coordinator,
    none for anyone else. Attempts under unknown usernames are not listed (they may hold a mistyped
    password)."""
    if not roles.is_coordinator(viewer):
        return []
    cool_off = get_cool_off()
    attempts = AccessAttempt.objects.filter(username__isnull=False)
    if cool_off is not None:
        attempts = attempts.filter(attempt_time__gte=timezone.now() - cool_off)
    counts = {row["username"]: row for row in attempts.values("username")
              .annotate(failures=Sum("failures_since_start"), last_failure=Max("attempt_time"))
              .filter(failures__gte=settings.AXES_FAILURE_LIMIT)}
    users = get_user_model().objects.filter(username__in=counts)
    if not roles.is_admin(viewer):
        users = users.exclude(is_superuser=True).exclude(groups__name__in=[roles.COORDINATOR, roles.ADMIN])
    rows = [{"user": user, "failures": counts[user.username]["failures"],
             "last_failure": counts[user.username]["last_failure"],
             "locked_until": counts[user.username]["last_failure"] + cool_off if cool_off is not None else None}
            for user in users]
    return sorted(rows, key=lambda row: row["last_failure"], reverse=True)
