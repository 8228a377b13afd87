"""The job API never sends a job's server paths (they can carry patient names), whatever the job's state."""

import pytest

from jobs import services
from jobs.models import PATH_PARAMS

pytestmark = pytest.mark.django_db


def test_a_queued_import_jobs_paths_stay_on_the_server(client, coordinator):
    params = {"source": "/data/DOE_JANE/study1", "manifest": "/data/DOE_JANE/manifest.csv", "boxes": "",
              "upload_dir": "/srv/uploads/upload-DOE", "label": "site A", "workers": 2}
    job = services.job_create(kind="import_dicom", params=params, user=coordinator, enqueue=False)
    client.force_login(coordinator)
    for url in (f"/api/jobs/{job.pk}/", "/api/jobs/"):
        response = client.get(url)
        assert response.status_code == 200
        assert "DOE" not in response.content.decode() and "/srv/" not in response.content.decode()
    sent = client.get(f"/api/jobs/{job.pk}/").json()["params"]
    assert sent["label"] == "site A" and sent["workers"] == 2 and sent["boxes"] == ""
    assert all(sent[key] == "(server path, not shown)" for key in PATH_PARAMS if params[key])
