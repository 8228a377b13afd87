from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and roles"

    def ready(self):
        from accounts import signals  # noqa: F401 - connects the cached-user receivers
        from accounts.roles import ADMIN, COORDINATOR
        from core import navigation

        for role in (COORDINATOR, ADMIN):
            navigation.register(role, "Locked accounts", "locked_accounts",
                                "Accounts locked after too many failed logins: unlock them.", 80)
