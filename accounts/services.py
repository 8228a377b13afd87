"""Writes on accounts: create a user with a role (and a reader profile for readers)."""

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import ReaderGroup, ReaderProfile
from accounts.roles import READER, ROLES


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
