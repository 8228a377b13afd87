"""Settings for the reader-study platform, every value from the environment (DESIGN.md: 12-factor).

Defaults give the embedded single-machine setup (SQLite file, a Celery broker that needs no server, files
under ./var); production sets DATABASE_URL, CELERY_BROKER_URL, REDIS_URL, SECRET_KEY, PSEUDONYM_KEY and
ALLOWED_HOSTS. With DEBUG off, secrets are required and every `check --deploy` item is on.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from core.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# TensorFlow's C++ start-up chatter (oneDNN, CPU features) is noise in worker logs and commands.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow 2.21 logs "oneDNN custom operations are on" through absl before its log level applies, on CPUs
# with oneDNN kernels only; off, CPU results are also the same on every CPU (the GPU path is unaffected).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
DATA_DIR = Path(env_str("DATA_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)

# Secrets are required whenever DEBUG is off, but they are enforced where the platform serves or works
# (the `config.E001` system check that every serving/working command runs, wsgi.py and the Celery worker:
# core.env.require_secrets), not while settings load, so commands that need no secret —
# `makemigrations --check`, `collectstatic` in an image build — run on a machine without them.
_DEV_SECRET = "dev-only-secret-key-not-for-production-5d1c1b0e0f9b4a4f8a5b7e2a9c3d6f10"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY") or (_DEV_SECRET if DEBUG else None)

# The secret behind keyed hashes (source patient key -> case) and the DICOM UID remapping. Changing it
# breaks the link between re-imports of the same patient, so it is separate from SECRET_KEY.
PSEUDONYM_KEY = env_str("PSEUDONYM_KEY") or ("dev-only-pseudonym-key" if DEBUG else None)

MISSING_SECRETS = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("PSEUDONYM_KEY", PSEUDONYM_KEY))
                   if not value]
if not SECRET_KEY:
    SECRET_KEY = "unset-" + secrets.token_urlsafe(40)  # per process; nothing can serve with it (see above)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "core",  # before whitenoise: its `runserver` refuses to start without the secrets (core.management)
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "accounts",
    "jobs",
    "imaging",
    "training",
    "inference",
    "reader_study",
    "analysis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY below
    "core.middleware.PermissionsPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into the lockout page (accounts/lockout.py)
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.roles",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# Test databases are named per process, so two test runs on one machine never share (and flush) one.
_TEST_SUFFIX = os.getpid()
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A file (not in-memory) test database, so a real Celery worker process can share it in tests.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{_TEST_SUFFIX}.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{_TEST_SUFFIX}"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache ----------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": (
        {"BACKEND": "core.cache.SharedClientRedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# The signed-in user and its roles come from the cache where every process shares it (Redis): one cache
# read instead of two queries per request (accounts/backends.py, docs/production.md *Read path*). A
# per-process cache could not be cleared from another process, so without Redis the user is read each time.
USER_CACHE = env_bool("USER_CACHE", bool(REDIS_URL))
# Sessions the same way: read from that cache (one minute at most), written through to the database, which
# stays the record (accounts/sessions.py); without a shared cache, from the database alone.
SESSION_ENGINE = "accounts.sessions" if USER_CACHE and REDIS_URL else "django.contrib.sessions.backends.db"

# --- auth -----------------------------------------------------------------------------------------
# django-axes first: it refuses a locked-out account before any password is checked (docs/security.md).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.backends.CachedUserBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Login lockout (django-axes; docs/security.md, *Login throttling*). Failures are counted per account
# (username), not per address: readers behind one hospital NAT share an address, and one reader's typos must
# not lock the others out. An account is locked after AXES_FAILURE_LIMIT failures within the cool-off (the
# right password is then refused too) until the cool-off has passed since the last failure or a coordinator
# or admin unlocks it; a success before the limit clears the count. An address is locked only after
# AXES_ADDRESS_FAILURE_LIMIT failures over all accounts (a password spray; 0: off). Attempts live in the
# database, so every web process sees them.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
AXES_ADDRESS_FAILURE_LIMIT = env_int("AXES_ADDRESS_FAILURE_LIMIT", 100)
_AXES_COOLOFF_MINUTES = env_int("AXES_COOLOFF_MINUTES", 30)   # 0: locked until unlocked
AXES_COOLOFF_TIME = timedelta(minutes=_AXES_COOLOFF_MINUTES) if _AXES_COOLOFF_MINUTES > 0 else None
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes.W006 wants "ip_address" among them against attackers rotating User-Agents or cookies. Per username,
# failures are summed over every address and User-Agent, so rotating gains nothing; per address is the
# separate, higher AXES_ADDRESS_FAILURE_LIMIT (accounts/lockout.py).
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False   # tries while locked neither count nor extend the lock
AXES_HANDLER = "accounts.lockout.AccountAndAddressHandler"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_ip"
AXES_HTTP_RESPONSE_CODE = 429
# Behind a TLS proxy REMOTE_ADDR is the proxy's: PROXY_COUNT proxies that append to X-Forwarded-For are
# trusted to name the client (login lockout and the API's anonymous rate). 0: REMOTE_ADDR, the header ignored.
PROXY_COUNT = env_int("PROXY_COUNT", 0)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- files ----------------------------------------------------------------------------------------
STATIC_URL = "static/"
# Collected static files belong to the code, not to the data: they are collected once per release (in the
# image build, or by `scripts/serve.sh collectstatic` on bare metal) next to the code, so a data volume
# mounted at DATA_DIR never hides them. Production collects with the manifest + compressed storage below.
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "staticfiles")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns about a missing folder
# WhiteNoise: hashed names (manifest storage) are cached for good ("immutable"); anything else briefly.
WHITENOISE_MAX_AGE = env_int("WHITENOISE_MAX_AGE", 0 if DEBUG else 3600)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or DATA_DIR / "media")
MEDIA_URL = "media/"  # never served directly: series are streamed by permission-checked views
UPLOAD_ROOT = Path(env_str("UPLOAD_ROOT") or DATA_DIR / "uploads")
KEEP_RAW_UPLOADS = env_bool("KEEP_RAW_UPLOADS", False)

# --- DICOM networking (issue 17, docs/pacs.md): the listener (Storage SCP) and the nodes it talks to ---
DICOM_AE_TITLE = env_str("DICOM_AE_TITLE") or "SARCOMA_RS"     # what PACSes call the platform
DICOM_PORT = env_int("DICOM_PORT", 11112)
DICOM_STUDY_QUIET_S = env_int("DICOM_STUDY_QUIET_S", 30)        # a study this long without a new instance: import
DICOM_MAX_ASSOCIATIONS = env_int("DICOM_MAX_ASSOCIATIONS", 10)
DICOM_MAX_INSTANCE_MB = env_int("DICOM_MAX_INSTANCE_MB", 512)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads stream to a temporary file on disk
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 20000)
# Import guards: a zip larger, with more members, or compressing better than this is refused (bombs).
IMAGING_ZIP_MAX_BYTES = env_int("IMAGING_ZIP_MAX_BYTES", 20 * 1024**3)
IMAGING_ZIP_MAX_MEMBERS = env_int("IMAGING_ZIP_MAX_MEMBERS", 200_000)
IMAGING_ZIP_MAX_RATIO = env_int("IMAGING_ZIP_MAX_RATIO", 200)
IMAGING_UPLOAD_MAX_BYTES = env_int("IMAGING_UPLOAD_MAX_BYTES", 20 * 1024**3)
IMAGING_IMPORT_WORKERS = env_int("IMAGING_IMPORT_WORKERS", min(2, os.cpu_count() or 1))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "core.static_storage.StaticStorage"      # WhiteNoise's manifest storage, each URL worked out once
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Celery ---------------------------------------------------------------------------------------
# Default broker: kombu's filesystem transport in the data folder, consumed by a real worker process
# (no server to install). Production: redis://.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
CELERY_BROKER_FOLDER = Path(env_str("CELERY_BROKER_FOLDER") or DATA_DIR / "broker")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    # Redis redelivers an unacknowledged task after this many seconds (a lost worker's training model).
    else {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    for _folder in ("queue", "control"):
        (CELERY_BROKER_FOLDER / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None  # job state lives in the Job table, not in a result backend
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A running job writes a heartbeat; one silent for longer than this is shown as "worker lost".
JOB_HEARTBEAT_TIMEOUT_S = env_int("JOB_HEARTBEAT_TIMEOUT_S", 120)

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.BoundedLimitOffsetPagination",
    # Rate limits (docs/security.md, *Login throttling*): far above what a reader's client sends (a ping
    # every few seconds, seven requests per case), so only a runaway or hostile client meets a 429 +
    # Retry-After. Counted in the default cache (Redis in production; per process without it). A rate of
    # "" switches it off. A view may add a tighter limit with `throttle_scope` and a rate under that name.
    "DEFAULT_THROTTLE_CLASSES": ["core.throttling.AnonRateThrottle", "core.throttling.UserRateThrottle",
                                 "core.throttling.ScopedRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": env_str("API_THROTTLE_ANON", "60/min") or None,
                               "user": env_str("API_THROTTLE_USER", "2000/min") or None},
    "NUM_PROXIES": PROXY_COUNT,
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Uterine sarcoma reader-study platform API",
    "DESCRIPTION": "Imaging, training, inference, reader-study and analysis endpoints. Session auth + CSRF.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs page (/api/schema/, /api/docs/) are for signed-in users only, in every mode.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus",
        "TrainedModelStatusEnum": "training.models.TrainedModel.Status",
        "EvaluationStatusEnum": "inference.models.Evaluation.Status",
        "StudyStatusEnum": "reader_study.models.Study.Status",
    },
}

# --- security (production) ------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp 4; docs/security.md, *Content-Security-Policy and headers*). Every script
# and style is a same-origin file: no inline script, event-handler attribute, style attribute or <style> block
# (tests/core/test_core_security_headers.py walks the templates). The viewer draws fetched arrays on a canvas
# and the figures are same-origin PNGs, so no data: or blob: image is allowed; only the API docs page adds data:
# for Swagger UI's icons (config/api_docs.py). Permissions-Policy: core/middleware.py.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)

# --- logging --------------------------------------------------------------------------------------
def _client_error_without_traceback(record) -> bool:
    """django.request logs a 403 raised as PermissionDenied (a reader opening the admin console) with the
    exception's traceback. A 4xx is the client's error, not the server's: keep the warning line, drop the
    traceback, so that a traceback in the log always means a server error."""
    if getattr(record, "status_code", 500) < 500:
        record.exc_info = record.exc_text = None
    return True


# Log lines never carry patient identifiers: the code logs pseudonyms and primary keys only.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"client_errors_without_traceback": {"()": "django.utils.log.CallbackFilter",
                                                    "callback": _client_error_without_traceback},
                # the embedded broker's URL `filesystem://` has no host by design: kombu's warning is noise
                "no_broker_hostname_warning": {"()": "django.utils.log.CallbackFilter",
                                               "callback": lambda r: "No hostname was supplied" not in r.getMessage()}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # pydicom's own warnings quote header values (names, IDs): keep them out of every log. django-axes: failed
    # logins and lockouts (WARNING, username and address masked), not every login (INFO).
    "loggers": {"django.db.backends": {"level": "WARNING"}, "pydicom": {"level": "ERROR"},
                # pynetdicom logs the source UIDs of every C-STORE at INFO/DEBUG (and dataset values at DEBUG)
                "pynetdicom": {"level": "WARNING"},
                "axes": {"level": "WARNING"}, "kombu.connection": {"filters": ["no_broker_hostname_warning"]},
                "absl": {"level": "ERROR"},  # TensorFlow/Keras start-up and saving chatter
                "django.request": {"filters": ["client_errors_without_traceback"]}},
}
