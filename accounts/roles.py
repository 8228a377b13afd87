"""The three roles (Django groups, created by a migration) and the checks every layer uses."""

READER = "Reader"
COORDINATOR = "Coordinator"
ADMIN = "Admin"
ROLES = (READER, COORDINATOR, ADMIN)


def _in_group(user, name: str) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    cache = getattr(user, "_role_names", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._role_names = cache
    return name in cache


def roles_known(user) -> bool:
    """Whether the user's roles are loaded already (the cached user brings them: ``accounts.backends``), so
    that checking one costs no query; a caller that would otherwise join the groups into its own query can
    check the role first instead."""
    return getattr(user, "_role_names", None) is not None


def is_admin(user) -> bool:
    return bool(getattr(user, "is_superuser", False)) or _in_group(user, ADMIN)


def is_coordinator(user) -> bool:
    """Coordinators, and admins (who can do everything a coordinator does)."""
    return is_admin(user) or _in_group(user, COORDINATOR)


def is_reader(user) -> bool:
    return _in_group(user, READER)


def primary_role(user) -> str | None:
    """The role whose page a user lands on: admin before coordinator before reader."""
    if is_admin(user):
        return ADMIN
    if is_coordinator(user):
        return COORDINATOR
    if is_reader(user):
        return READER
    return None
