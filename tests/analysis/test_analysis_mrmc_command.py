"""``manage.py mrmc``: a thin wrapper that prints JSON and turns input problems into CommandError.

No database is touched. Runs with pytest-django (settings config.settings) or, without it, sets Django up.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mrmc"
VANDYKE = DATA / "vandyke.csv"

if importlib.util.find_spec("config.settings") is None:
    pytest.skip("Django settings module config.settings is not there yet", allow_module_level=True)


@pytest.fixture(scope="module")
def call_command():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command as django_call_command

    django.setup()
    return django_call_command


def run(call_command, *args) -> str:
    out = io.StringIO()
    call_command("mrmc", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.mark.skipif(not VANDYKE.exists(), reason=f"Van Dyke data not found at {VANDYKE}")
def test_json_output_has_the_published_vandyke_jackknife_results(call_command):
    result = json.loads(run(call_command, VANDYKE, "--cov", "jackknife", "--json"))
    assert result["random_readers_random_cases"]["F"] == pytest.approx(4.456318693, abs=5e-10)
    assert result["random_readers_random_cases"]["ddf"] == pytest.approx(15.26, abs=5e-3)
    assert result["fixed_readers_random_cases"]["chi2"] == pytest.approx(5.475953, abs=5e-7)
    assert result["fixed_readers_random_cases"]["df"] == 1
    assert result["random_readers_fixed_cases"]["p"] == pytest.approx(0.04195875, abs=5e-9)
    assert result["covariance_terms"]["cov3"] == pytest.approx(0.0002390284, abs=5e-11)


@pytest.mark.skipif(not VANDYKE.exists(), reason=f"Van Dyke data not found at {VANDYKE}")
def test_sensitivity_with_threshold_and_text_summary(call_command):
    result = json.loads(run(call_command, VANDYKE, "--metric", "sensitivity", "--threshold", "3",
                            "--cov", "jackknife", "--json"))
    assert result["random_readers_random_cases"]["F"] == pytest.approx(6.689493, abs=5e-7)
    text = run(call_command, VANDYKE)
    assert "random readers, random cases: F = 4.4849" in text
    assert "1 - 2: -0.0438" in text


def test_bad_file_becomes_a_command_error_naming_file_line_and_column(call_command, tmp_path):
    from django.core.management import CommandError

    path = tmp_path / "bad.csv"
    path.write_text("modality,reader,case,truth,rating\n1,1,1,1,high\n")
    with pytest.raises(CommandError, match=r"bad\.csv, line 2, column 'rating': 'high' is not a number"):
        run(call_command, path, "--json")
    path.write_text("modality,reader,case,rating\n1,1,1,3\n")
    with pytest.raises(CommandError, match=r"bad\.csv, line 1 \(header\): missing column\(s\) truth"):
        run(call_command, path, "--json")
