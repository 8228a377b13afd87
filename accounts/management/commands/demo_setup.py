"""`manage.py demo_setup`: demo users, then every registered demo step (idempotent)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import create_demo_users
from core import demo


class Command(BaseCommand):
    help = "Create the demo users and demo data (synthetic). Refuses to run with DEBUG off."

    def add_arguments(self, parser):
        parser.add_argument("--users-only", action="store_true")

    def handle(self, *args, users_only=False, **options):
        if not settings.DEBUG:
            raise CommandError("demo_setup creates users with a published password: run it with DEBUG=1 only")
        logins = create_demo_users()
        if not users_only:
            for step in demo.steps():
                self.stdout.write(f"demo: {step.name}")
                step.func(lambda line: self.stdout.write(f"  {line}"))
        self.stdout.write("\nDemo logins (username, role, password):")
        for line in logins:
            self.stdout.write(f"  {line}")
