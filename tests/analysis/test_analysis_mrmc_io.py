"""Reading the long CSV: clear errors for malformed files; JSON results for good ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from analysis.mrmc_io import MRMCInputError, read_long_csv, run_from_csv

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mrmc"
VANDYKE = DATA / "vandyke.csv"
needs_vandyke = pytest.mark.skipif(not VANDYKE.exists(), reason=f"Van Dyke data not found at {VANDYKE}")


def write_study(path: Path, *, modalities=("unaided", "aided", "dnn"), readers=("r1", "r2", "r3"),
                n_cases=10, seed=0, header="modality,reader,case,truth,rating") -> Path:
    """A synthetic crossed study with 0-100 ratings (ties included)."""
    rng = np.random.default_rng(seed)
    truth = (np.arange(n_cases) % 3 == 0).astype(int)
    lines = [header]
    for m_i, m in enumerate(modalities):
        for r in readers:
            for c in range(n_cases):
                rating = int(np.clip(50 + 30 * truth[c] + 10 * m_i + rng.normal(scale=25), 0, 100)) // 10 * 10
                lines.append(f"{m},{r},C{c:03d},{truth[c]},{rating}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_a_crossed_study(tmp_path):
    table = read_long_csv(write_study(tmp_path / "study.csv"))
    assert table.ratings.shape == (3, 3, 10)
    assert table.modality_ids == ("aided", "dnn", "unaided")
    assert table.truth.sum() == 4
    assert np.isfinite(table.ratings).all()


def test_three_modalities_run_end_to_end_and_serialise_strictly(tmp_path):
    result = run_from_csv(write_study(tmp_path / "study.csv"), cov="jackknife")
    text = json.dumps(result, allow_nan=False)
    assert json.loads(text)["metric"] == "auc"
    rrrc = result["random_readers_random_cases"]
    assert rrrc["df1"] == 2 and len(rrrc["differences"]) == 3
    assert {"F", "ddf", "p"} <= rrrc.keys()
    assert {"chi2", "df", "p"} <= result["fixed_readers_random_cases"].keys()
    assert {"F", "df1", "ddf", "p"} <= result["random_readers_fixed_cases"].keys()
    assert set(result["figure_of_merit"]["mean"]) == {"aided", "dnn", "unaided"}
    assert {"var", "cov1", "cov2", "cov3"} <= result["covariance_terms"].keys()


def test_threshold_turns_ratings_into_calls_for_sensitivity(tmp_path):
    path = write_study(tmp_path / "study.csv")
    result = run_from_csv(path, metric="sensitivity", threshold=50)
    table = read_long_csv(path)
    expected = (table.ratings[..., table.truth] >= 50).mean(axis=(1, 2))
    got = [result["figure_of_merit"]["mean"][m] for m in table.modality_ids]
    np.testing.assert_allclose(got, expected)
    assert result["n_jackknife_cases"] == table.truth.sum()


def test_sensitivity_without_threshold_on_graded_ratings_is_refused(tmp_path):
    path = write_study(tmp_path / "study.csv")
    with pytest.raises(MRMCInputError, match=re.escape(str(path)) + ".*binary ratings.*threshold"):
        run_from_csv(path, metric="sensitivity")


@needs_vandyke
def test_vandyke_through_the_csv_reader_gives_the_published_delong_result():
    result = run_from_csv(VANDYKE, cov="delong")
    rrrc = result["random_readers_random_cases"]
    assert rrrc["F"] == pytest.approx(4.484854, abs=5e-7)
    assert rrrc["ddf"] == pytest.approx(15.06611, abs=5e-6)
    assert rrrc["p"] == pytest.approx(0.05123303, abs=5e-9)
    diff = rrrc["differences"][0]
    assert diff["modalities"] == ["1", "2"]
    assert (diff["estimate"], diff["se"]) == pytest.approx((-0.04380032, 0.0206825), abs=5e-8)
    assert (diff["ci_lo"], diff["ci_hi"]) == pytest.approx((-0.0878671960, 0.0002665519), abs=5e-11)
    assert result["covariance_terms"]["var"] == pytest.approx(0.0007921325, abs=5e-11)
    assert result["figure_of_merit"]["mean"]["2"] == pytest.approx(0.94083736, abs=5e-9)
    jk = run_from_csv(VANDYKE, cov="jackknife")
    assert jk["fixed_readers_random_cases"]["chi2"] == pytest.approx(5.475953, abs=5e-7)
    assert jk["random_readers_fixed_cases"]["F"] == pytest.approx(8.704, abs=5e-4)


def _replace_line(path: Path, index: int, text: str) -> Path:
    lines = path.read_text().splitlines()
    lines[index] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def test_missing_column_is_named(tmp_path):
    path = write_study(tmp_path / "s.csv", header="modality,reader,case,label,rating")
    with pytest.raises(MRMCInputError, match=r"s\.csv, line 1 \(header\): missing column\(s\) truth"):
        read_long_csv(path)


def test_reader_who_skipped_a_case_is_named(tmp_path):
    path = write_study(tmp_path / "s.csv")
    lines = path.read_text().splitlines()
    dropped = lines.pop(5)                      # modality unaided, reader r1, case C004
    path.write_text("\n".join(lines) + "\n")
    modality, reader, case, *_ = dropped.split(",")
    with pytest.raises(MRMCInputError, match=(rf"s\.csv: every reader must rate every case in every modality;"
                                              rf" missing rows for reader '{reader}' / case '{case}' / "
                                              rf"modality '{modality}'")):
        read_long_csv(path)


@pytest.mark.parametrize(("line", "pattern"), [
    ("unaided,r1,C000,2,50", r"line 2, column 'truth': '2' is not 0 or 1"),
    ("unaided,r1,C000,yes,50", r"line 2, column 'truth': 'yes' is not 0 or 1"),
    ("unaided,r1,C000,1,high", r"line 2, column 'rating': 'high' is not a number"),
    ("unaided,r1,C000,1,nan", r"line 2, column 'rating': 'nan' is not a finite number"),
    ("unaided,r1,C000,1,", r"line 2, column 'rating': empty value"),
    ("unaided,r1,C000,1", r"line 2: 4 fields where the header has 5"),
    ("unaided,r1,C000,0,50", r"line 12, column 'truth': case 'C000' has truth 1 here but 0 on line 2"),
])
def test_bad_rows_name_line_column_and_reason(tmp_path, line, pattern):
    path = _replace_line(write_study(tmp_path / "s.csv"), 1, line)
    with pytest.raises(MRMCInputError, match=re.escape(str(path)) + ", " + pattern):
        read_long_csv(path)


def test_duplicate_rating_is_reported_with_both_lines(tmp_path):
    path = write_study(tmp_path / "s.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(MRMCInputError, match=rf"line {len(lines) + 1}: .* is rated twice \(also on line 2\)"):
        read_long_csv(path)


def test_truth_must_be_binary_and_both_classes_present(tmp_path):
    path = tmp_path / "one_class.csv"
    rows = ["modality,reader,case,truth,rating"] + [f"{m},{r},{c},1,{(c * 7 + r) % 5}" for m in (1, 2)
                                                   for r in (1, 2) for c in range(6)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(MRMCInputError, match=r"one_class\.csv: auc needs at least 2 non-diseased cases"):
        run_from_csv(path)


@pytest.mark.parametrize(("content", "pattern"), [
    ("", r"the file is empty"),
    ("modality,reader,case,truth,rating\n", r"no data rows"),
])
def test_empty_files_are_explained(tmp_path, content, pattern):
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(MRMCInputError, match=pattern):
        read_long_csv(path)


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(MRMCInputError, match=r"nope\.csv: no such file"):
        read_long_csv(tmp_path / "nope.csv")
    path = write_study(tmp_path / "s.csv")
    with pytest.raises(MRMCInputError, match="unknown covariance 'bootstrap'"):
        run_from_csv(path, cov="bootstrap")
    with pytest.raises(MRMCInputError, match="unknown metric 'ppv'"):
        run_from_csv(path, metric="ppv")


def test_column_order_and_extra_columns_do_not_matter(tmp_path):
    path = write_study(tmp_path / "s.csv")
    lines = [line.split(",") for line in path.read_text().splitlines()]
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join(",".join([f[4], f[3], "x", f[2], f[1], f[0]]) for f in lines) + "\n")
    a, b = read_long_csv(path), read_long_csv(shuffled)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    np.testing.assert_array_equal(a.truth, b.truth)
