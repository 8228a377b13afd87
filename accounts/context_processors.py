from accounts import roles as role_checks


def roles(request):
    """Role flags for templates (navigation only; permissions are enforced in selectors and the API)."""
    user = request.user
    return {
        "is_admin_role": role_checks.is_admin(user),
        "is_coordinator_role": role_checks.is_coordinator(user),
        "is_reader_role": role_checks.is_reader(user),
    }
