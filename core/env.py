"""Reading settings from the environment (12-factor), with typed helpers and clear errors."""

import os

from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"environment variable {name}: expected a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"environment variable {name}: expected an integer, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def missing_secrets_message(missing: list[str]) -> str:
    return "; ".join(f"{name} must be set when DEBUG is off (set DEBUG=1 for development)" for name in missing)


def require_secrets() -> None:
    """Refuse to serve or run jobs without the production secrets (wsgi.py, the Celery worker)."""
    from django.conf import settings

    if settings.MISSING_SECRETS:
        raise ImproperlyConfigured(missing_secrets_message(settings.MISSING_SECRETS))
