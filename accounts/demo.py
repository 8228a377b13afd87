"""The demo users of `make demo` (core.demo lists them; accounts creates them). DEBUG installs only."""

from accounts.services import user_create
from core.demo import DEMO_PASSWORD, DEMO_USERS


def create_demo_users() -> list[str]:
    made = []
    for username, role, group, years in DEMO_USERS:
        user_create(username=username, password=DEMO_PASSWORD, role=role, reader_group=group,
                    years_experience=years, reader_code=f"R{username[-1]:0>2}" if role == "reader" else None,
                    update=True)
        made.append(f"{username:<12} {role:<12} {DEMO_PASSWORD}")
    return made
