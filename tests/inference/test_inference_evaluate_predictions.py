"""Prediction CSV reading (inference.prediction_io) and ``manage.py evaluate_predictions``."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from test_inference_nested import make_predictions, write_prediction_csv

from inference.prediction_io import PredictionInputError, evaluate_file, read_predictions
from inference.predictions import leave_one_out_ensembles

HEADER = "patient,truth,fold,repeat,sequence,slice,p_sarcoma\n"


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    data = make_predictions(n_patients=48, sarcoma_share=0.3, n_folds=3, n_repeats=3, signal=0.8, seed=21,
                            sequences=(2, 4), slices=(1, 2))
    path = tmp_path_factory.mktemp("pred") / "predictions.csv"
    write_prediction_csv(path, data)
    return path, data


def test_reading_a_file_gives_the_slices_repeats_truth_and_folds(small_file):
    path, data = small_file
    table = read_predictions(path)
    assert table.repeat_probs.shape == data.repeat_probs.shape
    assert table.patients[:2] == ("P000", "P001")
    np.testing.assert_array_equal(table.truth, data.truth)
    np.testing.assert_array_equal(table.folds, data.folds)
    np.testing.assert_array_equal(np.bincount(table.index.patient), np.bincount(data.slice_patient))
    np.testing.assert_allclose(np.sort(table.repeat_probs, axis=1), np.sort(data.repeat_probs, axis=1), atol=1e-6)
    assert leave_one_out_ensembles(table.repeat_probs).shape == table.repeat_probs.shape


def _write(tmp_path, body: str):
    path = tmp_path / "p.csv"
    path.write_text(HEADER + body)
    return path


def test_bad_rows_are_all_reported_with_line_numbers(tmp_path):
    path = _write(tmp_path, "\n".join([
        "a,sarcoma,1,1,T2axi,1,0.4",
        "a,benign,1,2,T2axi,1,0.4",          # line 3
        "a,sarcoma,0,1,DWI,1,0.4",           # line 4
        "a,sarcoma,1,1,T2axi,2,1.5",         # line 5
        "a,sarcoma,1,1,T9,1,0.4",            # line 6
        "b,leiomyoma,2,x,T2axi,1,0.4",       # line 7
        "a,leiomyoma,1,2,T2axi,1,0.3",       # line 8
        "a,sarcoma,1,1,T2axi,1,0.5",         # line 9 duplicate of line 2
        "b,leiomyoma,2,1,T2axi,1",           # line 10
    ]) + "\n")
    with pytest.raises(PredictionInputError) as caught:
        read_predictions(path)
    message = str(caught.value)
    for expected in ("line 3: column 'truth': 'benign'", "line 4: column 'fold'", "line 5: column 'p_sarcoma'",
                     "line 6: column 'sequence': unknown code 'T9'", "line 7: column 'repeat'",
                     "line 8: patient 'a' has truth leiomyoma here but sarcoma on line 2",
                     "line 9: patient 'a', sequence 'T2axi', slice '1', repeat 1 appears twice (also on line 2)",
                     "line 10: 6 fields where the header has 7"):
        assert expected in message
    assert ": 8 problem(s):" in message


def test_missing_repeats_and_fold_gaps_are_named(tmp_path):
    path = _write(tmp_path, "\n".join([
        "a,sarcoma,1,1,T2axi,1,0.4", "a,sarcoma,1,2,T2axi,1,0.4",
        "b,leiomyoma,3,1,T2axi,1,0.4",
        "c,leiomyoma,1,1,DWI,4,0.4", "c,leiomyoma,1,2,DWI,4,0.4",
    ]) + "\n")
    with pytest.raises(PredictionInputError) as caught:
        read_predictions(path)
    message = str(caught.value)
    assert "line 4: patient 'b', sequence 'T2axi', slice '1' lacks repeat(s) 2" in message
    assert "fold must run 1…3 without gaps; none has fold 2" in message


@pytest.mark.parametrize(("body", "message"), [
    (None, "no such file"),
    ("", "no data rows"),
    ("a,sarcoma,1,1,T2axi,1,0.4\na,sarcoma,1,2,T2axi,1,0.4\n", "both sarcoma and leiomyoma"),
])
def test_unusable_files_are_refused(tmp_path, body, message):
    path = tmp_path / "missing.csv" if body is None else _write(tmp_path, body)
    with pytest.raises(PredictionInputError, match=message):
        read_predictions(path)


def test_a_missing_column_is_named(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("patient,truth,fold,repeat,sequence,p_sarcoma\na,sarcoma,1,1,T2axi,0.4\n")
    with pytest.raises(PredictionInputError, match=r"line 1 \(header\): missing column\(s\) slice"):
        read_predictions(path)


def test_json_without_nested_has_the_two_in_sample_methods(small_file):
    out = StringIO()
    call_command("evaluate_predictions", str(small_file[0]), "--json", "--top", "3", stdout=out)
    result = json.loads(out.getvalue())
    assert {"paper_style", "training_fold_threshold"} <= set(result)
    assert "nested" not in result and "optimism_points" not in result
    block = result["paper_style"]
    assert block["label"] == "chosen on the evaluated patients"
    for name in ("ss_avg", "sensitivity", "specificity", "accuracy", "auc"):
        assert block[name]["ci_low"] <= block[name]["estimate"] <= block[name]["ci_high"]
    assert block["ss_avg"]["resamples"] == 2000


def test_json_with_nested_reports_the_optimism_and_the_patients_vote_shares(small_file):
    out = StringIO()
    call_command("evaluate_predictions", str(small_file[0]), "--json", "--nested", "--top", "3", stdout=out)
    result = json.loads(out.getvalue())
    assert result["nested"]["label"] == "nested: chosen without the scored patients"
    expected = 100 * (result["paper_style"]["ss_avg"]["estimate"] - result["nested"]["ss_avg"]["estimate"])
    assert result["optimism_points"] == pytest.approx(expected)
    assert result["nested"]["ss_avg"]["estimate"] > 0.7           # the planted signal
    shares = [p["sarcoma_vote_share"] for p in result["nested_patients"]]
    assert len(shares) == 48 and all(0 <= s <= 1 for s in shares)


def test_table_output_labels_every_method_and_the_optimism(small_file):
    out = StringIO()
    call_command("evaluate_predictions", str(small_file[0]), "--nested", "--top", "2", "--resamples", "500",
                 stdout=out)
    text = out.getvalue()
    for label in ("chosen on the evaluated patients",
                  "threshold on training folds, sets chosen on the evaluated patients",
                  "nested: chosen without the scored patients", "optimism (paper-style − nested SS-Avg)"):
        assert label in text


def test_the_command_turns_input_errors_into_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("evaluate_predictions", str(tmp_path / "nope.csv"))
    with pytest.raises(PredictionInputError, match="top must be at least 1"):
        evaluate_file(tmp_path / "nope.csv", top=0)
