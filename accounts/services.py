"""Writes on accounts: create a user with a role (and a reader profile for readers); unlock a locked-out
account (login throttling, accounts/lockout.py)."""

import logging

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts import roles
from accounts.models import ReaderGroup, ReaderProfile
from accounts.roles import READER, ROLES

log = logging.getLogger(__name__)


def _next_reader_code() -> str:
    n = ReaderProfile.objects.count() + 1
    while ReaderProfile.objects.filter(code=f"R{n:02d}").exists():
        n += 1
    return f"R{n:02d}"


@transaction.atomic
def user_create(*, username: str, password: str, role: str, email: str = "", reader_group: str | None = None,
                years_experience: int | None = None, reader_code: str | None = None, update: bool = False):
    """Create (or with update=True, update) a user in one role. Readers need group and years; the password
    must pass Django's password validators (``manage.py create_user --password 1`` is refused)."""
    role = role.capitalize()
    if role not in ROLES:
        raise ValidationError({"role": f"unknown role {role!r}; choose one of {', '.join(ROLES)}"})
    if role == READER:
        if reader_group not in ReaderGroup.values:
            raise ValidationError({"reader_group": f"a reader needs a group: {' or '.join(ReaderGroup.values)}"})
        if years_experience is None or not 0 <= years_experience <= 70:
            raise ValidationError({"years_experience": "a reader needs years of experience between 0 and 70"})
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user and not update:
        raise ValidationError({"username": f"user {username!r} already exists"})
    user = user or User(username=username)
    user.email = email
    try:   # Django's validators (settings.AUTH_PASSWORD_VALIDATORS): length, common, numeric, like the name
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from None
    user.is_staff = role != READER  # coordinators and admins use the Django admin too
    user.set_password(password)
    user.save()
    user.groups.set([Group.objects.get_or_create(name=role)[0]])  # a flushed test database has none
    if role == READER:
        ReaderProfile.objects.update_or_create(
            user=user,
            defaults={"group": reader_group, "years_experience": years_experience,
                      "code": reader_code or getattr(getattr(user, "reader_profile", None), "code", None)
                      or _next_reader_code()},
        )
    return user


def user_can_unlock(by, user) -> bool:
    """Admins unlock anyone; coordinators unlock readers (and users without a role), not each other."""
    return roles.is_admin(by) or (roles.is_coordinator(by) and not roles.is_coordinator(user))


@transaction.atomic
def user_unlock(*, user, by) -> int:
    """Lift a login lockout of ``user`` at once: forget its failed logins (from every address). Audited in
    the Django admin's history of the user (LogEntry, actor ``by``) and in the log. Returns the number of
    attempt records cleared (0: it was not locked; still audited)."""
    if not user_can_unlock(by, user):
        raise PermissionDenied("only an admin can unlock a coordinator or an admin" if roles.is_coordinator(by)
                               else "unlocking accounts is for coordinators and admins")
    cleared = AxesProxyHandler.reset_attempts(username=user.get_username())
    LogEntry.objects.log_actions(user_id=by.pk, queryset=[user], action_flag=CHANGE, single_object=True,
                                 change_message=f"Unlocked sign-in (login throttling): {cleared} failed-login "
                                                f"record(s) cleared.")
    log.info("user %s unlocked by user %s (%s failed-login records cleared)", user.pk, by.pk, cleared)
    return cleared
