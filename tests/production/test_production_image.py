"""The web image as built: its file tree made the way the Dockerfile makes it (tests/production/image_tree.py),
its CMD started with DEBUG=0 and real secrets: the login page and every asset it links answer 200, hashed
assets are cached for good, and the static files live in the image, not in the data volume."""

from __future__ import annotations

import re
import secrets

import pytest
import requests
from image_tree import build
from production_stack import Process, free_port, log_problems, wait_for

pytestmark = [pytest.mark.production]

ASSET = re.compile(r'(?:href|src)="(/static/[^"]+)"')


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return build(tmp_path_factory.mktemp("image"))


def test_the_image_collects_static_files_in_production_mode_beside_the_code(image):
    static_root = image.app / "staticfiles"
    assert image.env["STATIC_ROOT"] == str(static_root)
    assert (static_root / "staticfiles.json").is_file(), "no manifest: collected without the production storage"
    assert list(static_root.glob("css/app.*.css.gz")), "no compressed, hashed copy of the style sheet"
    assert not (image.data / "static").exists()
    assert image.cmd == ["scripts/serve.sh", "web"]


def test_the_image_command_serves_the_login_page_and_its_assets_with_debug_off(image):
    port = free_port()
    env = {**image.env, "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
           "PSEUDONYM_KEY": secrets.token_urlsafe(32), "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_SSL_REDIRECT": "0", "BIND": f"127.0.0.1:{port}", "WEB_WORKERS": "1"}
    log = image.app.parent / "web.log"
    web = Process("web", env, log, cmd=image.cmd, cwd=image.app)
    base = f"http://127.0.0.1:{port}"
    try:
        page = wait_for(lambda: _get(base + "/login/") or (not web.alive() and _fail(web)), 120, what="the login page")
        assert page.status_code == 200, page.text[:500]
        assets = sorted(set(ASSET.findall(page.text)))
        assert assets, "the login page links no static asset"
        for url in assets:
            response = requests.get(base + url, timeout=10)
            assert response.status_code == 200 and response.content, url
            assert re.search(r"\.[0-9a-f]{12}\.", url), f"{url}: not a hashed name"
            assert "immutable" in response.headers["Cache-Control"], (url, response.headers["Cache-Control"])
    finally:
        web.stop()
    assert not log_problems(log.read_text()), log.read_text()[-3000:]


def _get(url):
    try:
        return requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None


def _fail(process):
    raise AssertionError(f"the image's command exited:\n{process.text()[-3000:]}")
