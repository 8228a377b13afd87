"""Issue 20: the imaging and accounts commands say what is wrong in words a coordinator can act on, and
`build_cohort` selects cases as the cohort page does (all, synthetic, real, one institution)."""

import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from core.constants import LEIOMYOMA, SARCOMA
from imaging.models import Case
from imaging.services_cohorts import cohort_candidates, cohort_candidates_missing

pytestmark = pytest.mark.django_db


def _case(i: int, *, truth: str = SARCOMA, synthetic: bool = True, institution: str = "") -> Case:
    return Case.objects.create(pseudonym=f"SYN-MSG-{i:03d}", source_key_hash=hashlib.sha256(b"%d" % i).hexdigest(),
                               truth=truth, is_synthetic=synthetic, institution=institution)


# --- item 4: the cohort page's selections on the command line ---------------------------------------------

def test_cohort_candidates_select_as_the_cohort_page_does():
    a = _case(1, synthetic=True, institution="A")
    b = _case(2, synthetic=False, institution="A", truth=LEIOMYOMA)
    c = _case(3, synthetic=False, institution="B")
    _case(4, truth="", synthetic=False)
    assert set(cohort_candidates(selection="all")) == {a, b, c}
    assert set(cohort_candidates(selection="synthetic")) == {a}
    assert set(cohort_candidates(selection="real")) == {b, c}
    assert set(cohort_candidates(selection="real", institution="A")) == {b}


def test_build_cohort_takes_real_and_an_institution(monkeypatch):
    _case(1, synthetic=True, institution="A")
    real = _case(2, synthetic=False, institution="A")
    _case(3, synthetic=False, institution="B")
    from jobs import cli

    # the build itself is tested in tests/imaging/test_imaging_cohort.py
    monkeypatch.setattr(cli, "start", lambda command, **kw: _Done())
    out = io.StringIO()
    call_command("build_cohort", "real-a", "--cases", "real", "--institution", "A", stdout=out)
    assert "cohort real-a: 1 cases" in out.getvalue()
    from imaging.models import Cohort

    assert list(Cohort.objects.get(name="real-a").cases.all()) == [real]
    with pytest.raises(CommandError, match="--institution goes with"):
        call_command("build_cohort", "x", "--cases", real.pseudonym, "--institution", "A", stdout=io.StringIO())


class _Done:
    result = {}

    def refresh_from_db(self):
        pass


# --- item 6: messages ----------------------------------------------------------------------------------

def test_build_cohort_without_ground_truth_names_the_cause():
    _case(1, truth="")
    _case(2, truth="", synthetic=False)
    with pytest.raises(CommandError, match="none of the 2 case.s. has a ground truth yet") as caught:
        call_command("build_cohort", "c", "--cases", "all", stdout=io.StringIO())
    assert "import_dicom --manifest" in str(caught.value)
    assert "no synthetic case of institution 'X'" in cohort_candidates_missing(selection="synthetic",
                                                                               institution="X")


def test_build_cohort_without_any_case_says_import_first():
    with pytest.raises(CommandError, match="there are no cases yet: import DICOM first"):
        call_command("build_cohort", "c", stdout=io.StringIO())


def test_make_phantoms_writes_one_progress_line_a_patient_when_piped_and_names_the_option(tmp_path):
    out = io.StringIO()  # not a terminal
    args = ["make_phantoms", str(tmp_path / "p"), "--patients", "2", "--slice-size", "32",
            "--slices-per-series", "2", "--seed", "3"]
    call_command(*args, stdout=out)
    lines = out.getvalue().splitlines()
    assert "patients 1/2" in lines and "patients 2/2" in lines and "\r" not in out.getvalue()
    with pytest.raises(CommandError, match="pass --overwrite") as caught:
        call_command(*args, stdout=io.StringIO())
    assert "overwrite=True" not in str(caught.value)


def test_import_dicom_lists_manifest_and_box_problems_one_a_line(tmp_path):
    (tmp_path / "dicom").mkdir()
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("patient_key,class,length_mm\nP1,sarcomaa,5\nP2,leiomyoma,-3\n")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("patient_key,series_number,instance_number,x0,y0,x1,y1\nP1,1,1,a,0,5,5\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_dicom", str(tmp_path / "dicom"), "--manifest", str(manifest), "--boxes", str(boxes),
                     stdout=io.StringIO())
    lines = str(caught.value).splitlines()
    assert len(lines) >= 3
    assert all(line.startswith(("manifest: ", "boxes: ")) for line in lines)
    assert sum(line.startswith("manifest: ") for line in lines) >= 2


@pytest.mark.parametrize("extra", [["--group", "specialist"], ["--years", "12"], ["--code", "R09"]])
def test_create_user_refuses_reader_options_for_other_roles(extra):
    from django.contrib.auth.models import User

    with pytest.raises(CommandError, match="for readers only"):
        call_command("create_user", "coord", "--role", "coordinator", "--password", "a-Long-pass-2026", *extra,
                     stdout=io.StringIO())
    assert not User.objects.filter(username="coord").exists()
