"""Settings from the environment: production mode passes `check --deploy`; secrets are required."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROD_ENV = {
    "DEBUG": "0", "SECRET_KEY": "k" * 20 + "-production-secret-" + "x9Y" * 12, "PSEUDONYM_KEY": "p" * 40,
    "ALLOWED_HOSTS": "reader.example.org", "DATABASE_URL": "sqlite:////tmp/deploy-check.sqlite3",
}


def _manage(*args, env):
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "PSEUDONYM_KEY"}}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_production_mode_passes_check_deploy_with_no_issues():
    result = _manage("check", "--deploy", "--fail-level", "DEBUG", env=PROD_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _python(code: str, env):
    base = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "PSEUDONYM_KEY"}}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("secret", ["SECRET_KEY", "PSEUDONYM_KEY"])
def test_production_mode_refuses_to_start_without_a_secret(secret):
    env = {k: v for k, v in PROD_ENV.items() if k != secret}
    message = f"{secret} must be set when DEBUG is off"
    result = _manage("check", "--deploy", env=env)
    assert result.returncode != 0 and message in result.stderr
    served = _python("import config.wsgi", env)  # gunicorn and runserver load this
    assert served.returncode != 0 and message in served.stderr
    job = _python("import django; django.setup(); from jobs.services import job_run; job_run(job_pk=1)",
                  {**env, "DJANGO_SETTINGS_MODULE": "config.settings"})
    assert job.returncode != 0 and message in job.stderr


def test_commands_that_need_no_secret_run_without_them():
    env = {k: v for k, v in PROD_ENV.items() if k not in {"SECRET_KEY", "PSEUDONYM_KEY"}}
    result = _manage("makemigrations", "--check", "--dry-run", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_malformed_boolean_names_the_variable():
    result = _manage("check", env={**PROD_ENV, "DEBUG": "maybe"})
    assert "environment variable DEBUG: expected a boolean" in result.stderr


def test_defaults_are_sqlite_and_the_filesystem_broker(settings):
    assert os.environ.get("DATABASE_URL") or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    if not os.environ.get("CELERY_BROKER_URL"):
        assert settings.CELERY_BROKER_URL == "filesystem://"
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1


class TestDockerCompose:
    """No Docker engine runs here: the compose file is validated by reading it."""

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())

    def test_it_has_the_six_services(self):
        assert set(self.compose["services"]) == {"postgres", "redis", "web", "worker", "gpu-worker", "dicom-listener"}

    def test_postgres_has_a_healthcheck_and_a_volume(self):
        pg = self.compose["services"]["postgres"]
        assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
        assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
        assert "pgdata" in self.compose["volumes"]

    def test_every_process_is_started_by_the_one_start_up_script(self):
        """compose, the image and the production tests share scripts/serve.sh (tests/production run it)."""
        for service, role in (("web", "web"), ("worker", "worker"), ("gpu-worker", "gpu-worker"),
                              ("dicom-listener", "dicom-listener")):
            assert self.compose["services"][service]["command"] == ["scripts/serve.sh", role]
        dockerfile = (REPO / "Dockerfile").read_text()
        assert 'CMD ["scripts/serve.sh", "web"]' in dockerfile
        assert 'CMD ["scripts/serve.sh", "gpu-worker"]' in dockerfile

    def test_the_script_migrates_before_gunicorn_and_workers_consume_their_queues(self):
        script = (REPO / "scripts" / "serve.sh").read_text()
        web = script[script.index("web() {"):script.index("worker() {")]
        assert web.index("migrate") < web.index("gunicorn config.wsgi")
        assert "-Q default " in script[script.index("worker() {"):script.index("gpu_worker() {")]
        gpu = script[script.index("gpu_worker() {"):]
        assert "-Q gpu " in gpu and "--prefetch-multiplier 1" in gpu and "--concurrency 1" in gpu

    def test_the_gpu_worker_reserves_an_nvidia_gpu_and_builds_the_gpu_image(self):
        gpu = self.compose["services"]["gpu-worker"]
        device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
        assert gpu["build"]["target"] == "gpu"
        assert "FROM tensorflow/tensorflow:${TF_VERSION}-gpu AS gpu" in (REPO / "Dockerfile").read_text()

    def test_every_app_service_is_configured_by_environment_and_shares_media(self):
        for name in ("web", "worker", "gpu-worker", "dicom-listener"):
            service = self.compose["services"][name]
            env = service["environment"]
            for key in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SECRET_KEY", "PSEUDONYM_KEY",
                        "MEDIA_ROOT", "ALLOWED_HOSTS"):
                assert key in env, f"{name} lacks {key}"
            assert env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
            assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379")
            assert "media:/data" in service["volumes"]
