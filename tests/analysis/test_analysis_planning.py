"""Study planning (issue 19): MRMC power and sample size from a pilot's OR variance components, verified against
RJafroc's published output for the Van Dyke data (empirical AUC, OR with jackknife covariances, observed effect
size, alpha 0.05); the command; the coordinators' page (GENERATED study of factories_analysis, SYNTHETIC)."""

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from analysis import planning, services
from factories_analysis import build_study

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mrmc"
VANDYKE = DATA / "vandyke.csv"
needs_vandyke = pytest.mark.skipif(not VANDYKE.exists(), reason=f"Van Dyke data not found at {VANDYKE}")


@pytest.fixture(scope="module")
def pilot():
    if not VANDYKE.exists():
        pytest.skip(f"Van Dyke data not found at {VANDYKE}")
    return planning.pilot_from_csv(VANDYKE, covariance="jackknife")


def _command(*args) -> str:
    out = io.StringIO()
    call_command("mrmc_power", *map(str, args), stdout=out)
    return out.getvalue()


@needs_vandyke
def test_power_for_6_readers_and_251_cases_is_rjafrocs(pilot):
    result = planning.power(pilot, readers=6, cases=251, analysis="RRRC")
    assert round(result.power, 7) == 0.8005403
    assert (round(result.ncp, 2), round(result.ddf, 1), round(result.f_critical, 2)) == (8.91, 16.1, 4.49)
    assert result.effect_size == pytest.approx(0.94083736 - 0.89703704, abs=1e-8)    # the observed difference


@needs_vandyke
def test_the_smallest_number_of_cases_for_10_readers_is_rjafrocs(pilot):
    found = planning.smallest_cases(pilot, readers=10, target_power=0.8, analysis="RRRC")
    assert found.cases == 163 and round(found.power, 7) == 0.8015625
    below = planning.power(pilot, readers=10, cases=162)
    assert below.power < 0.8                                                  # 163 is the first that reaches it


@needs_vandyke
def test_the_generalizations_and_the_inputs_behave(pilot):
    rrrc, frrc, rrfc = (planning.power(pilot, readers=6, cases=251, analysis=a).power for a in planning.ANALYSES)
    assert frrc > rrrc and rrfc > rrrc           # fixing readers or cases removes a source of variance
    assert planning.power(pilot, readers=6, cases=500).power > planning.power(pilot, readers=6, cases=251).power
    assert planning.power(pilot, readers=6, cases=251, effect_size=0.08).power > 0.99
    assert planning.smallest_cases(pilot, readers=3, analysis="RRFC") is None       # readers too few: no K will do
    with pytest.raises(planning.PlanningError, match="effect size is 0"):
        planning.power(pilot, readers=6, cases=251, effect_size=0)
    with pytest.raises(planning.PlanningError, match="readers must be at least 2"):
        planning.power(pilot, readers=1, cases=251)


@needs_vandyke
def test_the_command_gives_the_power_the_smallest_k_and_the_table(pilot):
    assert "J = 6, K = 251: power 0.8005403 (non-centrality 8.91, ddf 16.1, critical F 4.49)" in _command(
        VANDYKE, "--readers", 6, "--cases", 251)
    assert "J = 10, K = 163: power 0.8015625" in _command(VANDYKE, "--readers", 10)
    result = json.loads(_command(VANDYKE, "--readers", 10, "--table", "--json"))
    assert result["design"]["cases"] == 163 and result["effect_size_source"] == "observed in the pilot"
    table = {row["readers"]: row["cases"] for row in result["table"]}
    assert list(table) == list(range(2, 101)) and table[10] == 163 and table[6] == 251
    assert all(table[j] >= table[j + 1] for j in range(4, 100))            # more readers, fewer cases
    assert "3 readers: power 0.8 is not reached" in _command(VANDYKE, "--readers", 3, "--analysis", "RRFC")


def test_the_command_refuses_bad_input_with_a_clear_message(tmp_path):
    with pytest.raises(CommandError, match="missing.csv: no such file"):
        _command(tmp_path / "missing.csv", "--readers", 5)
    three = tmp_path / "three.csv"
    rows = ["modality,reader,case,truth,rating"] + [f"{m},{r},{c},{c % 2},{(c * 7 + m + r) % 5}"
                                                    for m in (1, 2, 3) for r in (1, 2) for c in range(1, 9)]
    three.write_text("\n".join(rows) + "\n")
    with pytest.raises(CommandError, match="exactly two modalities"):
        _command(three, "--readers", 5)


@pytest.mark.django_db
def test_the_planning_page_plans_from_a_study_and_exports_its_table(client, coordinator, make_user):
    study = build_study()["study"]
    client.force_login(make_user("reader"))
    assert client.get("/analysis/planning/").status_code == 403
    client.force_login(coordinator)
    page = client.get(f"/analysis/planning/?study={study.pk}&effect=0.05&power=0.8&readers=8")
    text = page.content.decode()
    assert page.status_code == 200 and 'id="design"' in text and 'id="planning-table"' in text
    components = services.study_report(study=study).stats.mrmc_for("auc").analysis.components
    pilot = planning.pilot_components(components, covariance="jackknife", modality_ids=("exam 1", "exam 2"))
    expected = planning.smallest_cases(pilot, readers=8, target_power=0.8, effect_size=0.05)
    if expected is None:
        assert "do not reach power 0.8" in text
    else:
        assert f"<strong>8 readers need {expected.cases} cases</strong>" in text
    exported = client.get(f"/analysis/planning/?study={study.pk}&effect=0.05&power=0.8&readers=8&format=csv")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert exported["Content-Disposition"].startswith("attachment") and [r["readers"] for r in rows][:2] == ["2", "3"]
    assert rows[6]["cases"] == (str(expected.cases) if expected else "")
    figure = client.get(f"/analysis/planning/?study={study.pk}&effect=0.05&readers=8&format=png")
    assert figure["Content-Type"] == "image/png" and figure.content[:4] == b"\x89PNG"
    assert f"/analysis/planning/?study={study.pk}" in client.get(f"/analysis/studies/{study.pk}/").content.decode()


@needs_vandyke
@pytest.mark.django_db
def test_an_uploaded_pilot_is_planned_from_and_only_its_components_are_kept(client, coordinator):
    client.force_login(coordinator)
    with VANDYKE.open("rb") as handle:
        response = client.post("/analysis/planning/", {"pilot": handle, "covariance": "jackknife"})
    assert response.status_code == 302 and "source=upload" in response["Location"]
    stored = client.session[planning_session_key()]
    assert set(stored) == set(planning.PilotComponents.__dataclass_fields__)    # numbers, no rows of the file
    page = client.get("/analysis/planning/?source=upload&covariance=jackknife&readers=10").content.decode()
    assert "<strong>10 readers need 163 cases</strong>" in page
    bad = client.post("/analysis/planning/", {"pilot": io.BytesIO(b"modality,reader\n1,2\n")})
    assert bad.status_code == 400 and 'id="planning-error"' in bad.content.decode()


def planning_session_key():
    from analysis.views_planning import SESSION_KEY

    return SESSION_KEY
