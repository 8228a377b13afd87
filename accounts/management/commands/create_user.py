"""`manage.py create_user NAME --role reader|coordinator|admin [...]`."""

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services import user_create


class Command(BaseCommand):
    help = "Create a user with a role (Reader, Coordinator or Admin); readers get a group and experience."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=["reader", "coordinator", "admin"])
        parser.add_argument("--password", help="asked for when omitted")
        parser.add_argument("--email", default="")
        parser.add_argument("--group", choices=["specialist", "practitioner"], help="readers only")
        parser.add_argument("--years", type=int, help="readers only: years of experience")
        parser.add_argument("--code", help="readers only: reader code for exports (default R01, R02, ...)")
        parser.add_argument("--update", action="store_true", help="update the user if it exists")

    def handle(self, *args, **o):
        reader_only = [f"--{name}" for name in ("group", "years", "code") if o[name] is not None]
        if o["role"] != "reader" and reader_only:
            raise CommandError(f"{', '.join(reader_only)}: for readers only; a {o['role']} has no reader profile "
                               "(leave them out, or use --role reader)")
        password = o["password"] or getpass.getpass(f"password for {o['username']}: ")
        try:
            user = user_create(username=o["username"], password=password, role=o["role"], email=o["email"],
                               reader_group=o["group"], years_experience=o["years"], reader_code=o["code"],
                               update=o["update"])
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(self.style.SUCCESS(f"user {user.username} ({o['role']}) ready"))
