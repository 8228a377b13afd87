"""The exam-2 AI panel (issue 15, bug 1 and item 7): the set's sequences the case has and lacks, counts of
ensembles beside whole percentages, the operating point, honest figures with CIs, and a truthful account of
why the likelihood can differ from the per-sequence figures. SYNTHETIC calls and cases only."""

import numpy as np
import pytest

from core.constants import SARCOMA, SEQUENCE_CODES
from factories_reader_study import EvaluationFactory, answer_all, case_with_series, move_washout, open_study
from inference.models import CaseAIResult
from inference.predictions import likelihood_figures
from reader_study import ai_panel, selectors, services

SET = ["ADC", "DWI", "dynamicaxi", "fsT1CEsag"]
NESTED = {"sensitivity": {"estimate": 78.26, "ci_low": 61.2, "ci_high": 89.04},
          "specificity": {"estimate": 83.5, "ci_low": 70.1, "ci_high": 91.49}}


def test_a_case_lacking_most_of_the_set_lists_them_as_not_available_and_says_why_it_scores_zero():
    """The B-272 report: DWI called sarcoma by all 24 ensembles, overall 0 %: with DWI alone of the set the
    score is at most +1, and every ensemble's threshold is +2."""
    shown = ai_panel.panel(likelihood=0.0, per_sequence={"DWI": 100.0, "T2axi": 37.5}, subset=SET, n_ensembles=24,
                           thresholds=[2] * 24)
    assert shown["used"] == [{"code": "DWI", "n_sarcoma": 24, "percent": 100}]
    assert shown["missing"] == ["ADC", "dynamicaxi", "fsT1CEsag"]
    assert shown["likelihood"] == 0 and shown["n_sarcoma"] == 0
    assert "at most +1, below every ensemble's threshold" in shown["note"]
    assert shown["threshold"] == {"low": 2, "high": 2, "text": "score ≥ +2"}
    assert "T2axi" not in str(shown)                     # not in the set: not on the panel


def test_the_likelihood_is_a_count_of_ensembles_and_a_whole_percentage():
    shown = ai_panel.panel(likelihood=70.8333, per_sequence={"ADC": 62.5, "DWI": 95.8333}, subset=SET,
                           n_ensembles=24, thresholds=[0] * 12 + [1] * 12)
    assert (shown["n_sarcoma"], shown["n_ensembles"], shown["likelihood"]) == (17, 24, 71)
    assert [(r["code"], r["n_sarcoma"], r["percent"]) for r in shown["used"]] == [("ADC", 15, 62), ("DWI", 23, 96)]
    assert shown["threshold"]["text"] == "score ≥ 0 to ≥ +1, depending on the ensemble (median ≥ 0)"
    assert shown["note"] == ""                           # both sequences present: the score can reach either threshold


def test_honest_figures_come_from_the_nested_evaluation_else_are_labelled_optimistic():
    nested = ai_panel.performance(NESTED, {"sensitivity": {"estimate": 95.0, "ci_low": 80.0, "ci_high": 99.0},
                                           "specificity": {"estimate": 96.0, "ci_low": 85.0, "ci_high": 99.0}})
    assert nested["kind"] == "nested" and "without the patients" in nested["label"]
    assert nested["sensitivity"]["text"] == "78 % (95 % CI 61–89 %)"
    assert nested["specificity"]["text"] == "84 % (95 % CI 70–91 %)"
    fallback = ai_panel.performance(None, NESTED)
    assert fallback["kind"] == "in_sample" and "optimistic" in fallback["label"]
    assert ai_panel.performance(None, None) is None


def test_the_panels_counts_and_notes_agree_with_the_ensembles_calls():
    """For random SYNTHETIC calls: the panel's counts are those of inference.predictions, and whenever the
    panel says the threshold decides the case whatever the sequences show, every ensemble agrees."""
    rng = np.random.default_rng(3)
    members, patients = 24, 200
    calls = rng.choice([-1, 1], size=(members, patients, len(SEQUENCE_CODES)))
    calls[:, rng.random((patients, len(SEQUENCE_CODES))) < 0.5] = 0      # sequences a patient lacks
    subset = [SEQUENCE_CODES.index(c) for c in SET]
    mask = sum(1 << i for i in subset)
    for thresholds in (rng.integers(-1, 3, size=members), np.full(members, 2), np.full(members, -1)):
        figures = likelihood_figures(calls, mask, thresholds)
        notes = set()
        for p in range(patients):
            shown = figures.for_patient(p)
            panel = ai_panel.panel(likelihood=shown["sarcoma_likelihood_percent"],
                                   per_sequence=shown["sequence_percent"], subset=SET, n_ensembles=members,
                                   thresholds=thresholds.tolist())
            assert panel["n_sarcoma"] == int(figures.calls[:, p].sum())
            for row in panel["used"]:
                assert row["n_sarcoma"] == int((calls[:, p, SEQUENCE_CODES.index(row["code"])] == 1).sum())
            assert len(panel["used"]) + len(panel["missing"]) == len(SET)
            if "no ensemble can call it sarcoma" in panel["note"] or "no ensemble calls" in panel["note"]:
                assert panel["n_sarcoma"] == 0
            if "every ensemble calls it sarcoma" in panel["note"]:
                assert panel["n_sarcoma"] == members
            if "whose threshold is higher cannot" in panel["note"]:
                assert panel["n_sarcoma"] <= int((thresholds <= len(panel["used"])).sum()) < members
            if "none of the set's sequences" in panel["note"]:
                assert panel["n_sarcoma"] == int((thresholds <= 0).sum())
            notes.add(panel["note"].split(":")[0])
        assert len(notes) >= 2                      # the cases above do occur


# --- the page -----------------------------------------------------------------------------------------
@pytest.fixture
def exam2(coordinator, reader):
    """An open study of one SYNTHETIC case (T2axi, T2sag, DWI) whose AI set is ADC, DWI, dynamicaxi, fsT1CEsag,
    the reader past the washout."""
    case = case_with_series(truth=SARCOMA, seed=3)
    evaluation = EvaluationFactory(chosen_subset=SET, results={
        "chosen": {"codes": SET, "thresholds": [2] * 24, "intervals": {"ensemble": NESTED}},
        "methods": {"nested": {"label": "nested", "n_sets": 1, **NESTED}}})
    CaseAIResult.objects.create(evaluation=evaluation, case=case, likelihood=0.0, subset=SET, n_ensembles=24,
                                per_sequence={"DWI": 100.0, "T2axi": 41.6667, "T2sag": 8.3333})
    study = open_study(coordinator=coordinator, readers=[reader], cases=[case], evaluation=evaluation)
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=29)
    return study


@pytest.mark.django_db
def test_the_exam2_panel_names_only_the_sequences_the_case_has_and_explains_its_zero(client, exam2, reader):
    a = selectors.worklist(exam2, reader, 2).first()
    client.force_login(reader)
    html = client.get(f"/reading/{a.pk}/").content.decode()
    panel = html[html.index('id="ai-panel"'):html.index("</section>", html.index('id="ai-panel"'))]
    assert "0 %" in panel and "<strong>0 of 24</strong> ensembles call sarcoma" in panel
    assert '<tr class="used" data-code="DWI"><th scope="row">DWI</th><td>24 of 24 (100 %) · used</td></tr>' in panel
    for code in ("ADC", "dynamicaxi", "fsT1CEsag"):
        assert (f'<tr class="missing" data-code="{code}"><th scope="row">{code}</th>'
                "<td>not available for this case</td></tr>") in panel
    assert "T2axi" not in panel and "Sequences used" not in panel
    assert "scores at most +1, below every ensemble&#x27;s threshold" in panel
    assert "Operating point: an ensemble calls sarcoma at a score ≥ +2." in panel
    assert "Sensitivity 78 % (95 % CI 61–89 %), specificity 84 % (95 % CI 70–91 %); honest (nested)" in panel
    assert 'data-kind="nested"' in panel and "adds the scores (a missing sequence adds 0)" in panel
    assert not any(word in panel.lower() for word in ("coverage", "of the cases", "other case"))
    ai = client.get(f"/api/reading/{a.pk}/").json()["ai"]
    assert ai["missing"] == ["ADC", "dynamicaxi", "fsT1CEsag"] and ai["performance"]["kind"] == "nested"


@pytest.mark.django_db
def test_exam1_of_the_same_study_carries_none_of_the_panel(client, exam2, reader):
    a = selectors.worklist(exam2, reader, 1).first()
    client.force_login(reader)
    assert client.get(f"/reading/{a.pk}/").status_code == 302          # finished: frozen
    assert selectors.ai_panel_for(a) is None


@pytest.mark.django_db
def test_without_a_nested_evaluation_the_panel_labels_its_figures_optimistic(client, exam2, reader):
    evaluation = exam2.evaluation
    evaluation.results = {**evaluation.results, "methods": {}}
    evaluation.save(update_fields=["results"])
    a = selectors.worklist(exam2, reader, 2).first()
    client.force_login(reader)
    html = client.get(f"/reading/{a.pk}/").content.decode()
    assert 'data-kind="in_sample"' in html and "optimistic" in html
