"""The SYNTHETIC phantom cohort: determinism, coverage, readable DICOM with fake identifiers at every
depth, round trip through the sequence rules, consistent manifests and boxes, class appearance."""

import csv
import hashlib
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from core.constants import LEIOMYOMA, SARCOMA, SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging import phantom_anatomy
from imaging.phantom_dicom import (
    PRIVATE_CREATOR,
    SeriesContext,
    SeriesWriter,
    fake_identity,
    instance_dataset,
    phantom_uid,
)
from imaging.phantom_protocols import SEQUENCE_COVERAGE
from imaging.phantoms import (
    BOX_COLUMNS,
    MANIFEST_COLUMNS,
    SERIES_COLUMNS,
    plan_cohort,
    render_patient,
    write_phantom_cohort,
)
from imaging.sequences import classify_series, load_default_rules, series_attributes

SMALL = {"patients": 6, "sarcoma_fraction": 0.5, "seed": 11, "slice_size": 48, "slices_per_series": 6}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("phantoms") / "cohort"
    summary = write_phantom_cohort(outdir, **SMALL)
    return summary


def _series_folder(summary, patient_key: str, series_number: int | str) -> Path:
    return summary.dicom_dir / patient_key / f"S{int(series_number):04d}"


# --- determinism --------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files_and_other_seed_differs(cohort, tmp_path):
    again = write_phantom_cohort(tmp_path / "again", **SMALL)
    first, second = _digest_tree(cohort.outdir), _digest_tree(again.outdir)
    assert first == second
    assert len(first) == cohort.instances + 4  # DICOM files + 3 CSVs + README
    other = write_phantom_cohort(tmp_path / "other", **{**SMALL, "seed": 12})
    other_digests = _digest_tree(other.outdir)
    dicoms = [k for k in first if k.endswith(".dcm") and k in other_digests]
    assert dicoms and all(first[k] != other_digests[k] for k in dicoms)


def test_uids_are_deterministic_and_distinct():
    assert phantom_uid(1, "SYNTH-000001", "study") == phantom_uid(1, "SYNTH-000001", "study")
    assert phantom_uid(1, "SYNTH-000001", "study") != phantom_uid(2, "SYNTH-000001", "study")
    uid = phantom_uid(1, "SYNTH-000001", 3, 7)
    assert uid.startswith("2.25.") and len(uid) <= 64 and pydicom.uid.UID(uid).is_valid


def test_fast_writer_bytes_equal_pydicom_reference():
    plan = plan_cohort(patients=3, sarcoma_fraction=0.34, seed=5)[0]
    rendered = render_patient(plan, seed=5, slice_size=32, slices_per_series=3)
    who = fake_identity(plan, 5)
    for number, series in enumerate(rendered.series, start=1):
        ctx = SeriesContext(plan=plan, who=who, series=series, series_number=number, seed=5,
                            study_uid="1.2.3", series_uid=f"1.2.3.{number}", frame_uid="1.2.4", overlay=True)
        writer = SeriesWriter(ctx)
        for instance in (1, series.stored.shape[0]):
            reference = io.BytesIO()
            instance_dataset(ctx, instance).save_as(reference, enforce_file_format=True)
            assert writer.file_bytes(instance)[0] == reference.getvalue(), (series.code, instance)


# --- plan and coverage --------------------------------------------------------------------------
def test_coverage_on_200_patients_is_like_the_paper():
    plans = plan_cohort(patients=200, sarcoma_fraction=0.24, seed=2024)
    n = len(plans)
    share = {code: sum(code in p.sequences for p in plans) / n for code in SEQUENCE_CODES}
    # Binomial SD at p = 0.98, n = 200 is 0.01: 4 SD bounds.
    assert share["T2axi"] >= 0.94 and share["T2sag"] >= 0.94
    assert 0.91 <= share["DWI"] <= 1.0
    assert 0.86 <= share["ADC"] <= 0.99
    for code in SEQUENCE_CODES:
        expected = SEQUENCE_COVERAGE[code] * (SEQUENCE_COVERAGE["DWI"] if code == "ADC" else 1.0)
        assert abs(share[code] - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 0.01, code
    assert all(len(p.sequences) < len(SEQUENCE_CODES) for p in plans)
    assert all("T2axi" in p.sequences or "T2sag" in p.sequences for p in plans)
    assert all("DWI" in p.sequences for p in plans if "ADC" in p.sequences)
    assert sum(p.label == SARCOMA for p in plans) == 48


def test_leiomyoma_descriptors_and_difficulty():
    easy = plan_cohort(patients=400, sarcoma_fraction=0.25, seed=3, difficulty=0.0)
    hard = plan_cohort(patients=400, sarcoma_fraction=0.25, seed=3, difficulty=1.0)
    leiomyomas = [p for p in easy if p.label == LEIOMYOMA]
    degenerated = sum(p.degeneration for p in leiomyomas) / len(leiomyomas)
    assert 0.27 <= degenerated <= 0.48  # paper: 37.5%
    assert all(p.degeneration is None and p.irregular_margin is None for p in easy if p.label == SARCOMA)

    def mean_likeness(plans, label, degenerated=None):
        chosen = [p.sarcoma_likeness for p in plans if p.label == label
                  and (degenerated is None or p.degeneration == degenerated)]
        return float(np.mean(chosen))

    assert mean_likeness(hard, LEIOMYOMA, True) > mean_likeness(easy, LEIOMYOMA, True) + 0.4
    assert mean_likeness(hard, SARCOMA) < mean_likeness(easy, SARCOMA) - 0.1
    # Plain leiomyomas do not depend on difficulty, and sarcomas stay the more sarcoma-like class.
    assert mean_likeness(hard, LEIOMYOMA, False) == pytest.approx(mean_likeness(easy, LEIOMYOMA, False))
    assert mean_likeness(hard, SARCOMA) > mean_likeness(hard, LEIOMYOMA)


@pytest.mark.parametrize("kwargs, field", [
    ({"patients": 0}, "patients"), ({"sarcoma_fraction": 1.5}, "sarcoma_fraction"),
    ({"difficulty": -0.1}, "difficulty"), ({"slice_size": 8}, "slice_size"),
    ({"slices_per_series": 0}, "slices_per_series"),
])
def test_bad_arguments_name_the_field(tmp_path, kwargs, field):
    with pytest.raises(ValueError, match=field):
        write_phantom_cohort(tmp_path / "x", **{**SMALL, **kwargs})


def test_refuses_a_folder_that_is_not_empty(tmp_path, cohort):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        write_phantom_cohort(tmp_path, **{**SMALL, "patients": 1})
    with pytest.raises(FileExistsError, match="not a phantom cohort"):
        write_phantom_cohort(tmp_path, **{**SMALL, "patients": 1}, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_an_earlier_cohort(tmp_path):
    first = write_phantom_cohort(tmp_path / "c", **{**SMALL, "patients": 2})
    second = write_phantom_cohort(tmp_path / "c", **{**SMALL, "patients": 1}, overwrite=True)
    assert sorted(p.name for p in second.dicom_dir.iterdir()) == ["SYNTH-000001"]
    assert len(_read_csv(second.manifest_path)) == 1 and first.patients == 2


def test_progress_is_reported_per_patient(tmp_path):
    calls = []
    write_phantom_cohort(tmp_path / "p", **{**SMALL, "patients": 3},
                         progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


# --- DICOM content ------------------------------------------------------------------------------
def test_every_file_is_readable_mr_with_pixels_and_synthetic_labels(cohort):
    files = sorted(cohort.dicom_dir.rglob("*.dcm"))
    assert len(files) == cohort.instances
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.Modality == "MR" and ds.SOPClassUID == pydicom.uid.MRImageStorage
        pixels = ds.pixel_array
        assert pixels.shape == (SMALL["slice_size"], SMALL["slice_size"]) and pixels.dtype == np.uint16
        assert pixels.max() > 0 and pixels.max() < 4096
        assert "SYNTHETIC" in ds.ImageComments and "SYNTHETIC" in ds.StudyDescription
        assert str(ds.PatientName).startswith("PHANTOM^") and ds.PatientID.startswith("SYNTH-")
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_fake_identifiers_sit_at_every_depth(cohort):
    path = next(iter(sorted(cohort.dicom_dir.rglob("*.dcm"))))
    ds = pydicom.dcmread(path)
    for keyword in ("PatientBirthDate", "InstitutionName", "ReferringPhysicianName",
                    "PerformingPhysicianName", "AccessionNumber", "StudyDate", "StudyTime", "PatientAddress",
                    "OperatorsName"):
        assert str(ds.get(keyword, "")).strip(), keyword
    assert "SYNTHETIC" in ds.InstitutionName
    assert "FAKE" in str(ds.RequestAttributesSequence[0].RequestingPhysician)
    assert "FAKE" in str(ds.ReferencedPerformedProcedureStepSequence[0].PerformingPhysicianName)
    assert ds.OtherPatientIDsSequence[0].PatientID.startswith("SYNTH-ALT-")
    block = ds.private_block(0x0029, PRIVATE_CREATOR)
    assert block[0x11].value == ds.PatientID and "PHANTOM" in block[0x10].value
    assert ds.PatientID in ds[0x60000022].value and 0x60003000 in ds


def test_geometry_attributes_are_consistent(cohort):
    series = _read_csv(cohort.series_path)
    for row in series:
        if row["sequence_code"] == UNUSED_SEQUENCE:
            continue
        folder = _series_folder(cohort, row["patient_key"], row["series_number"])
        datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
        assert len(datasets) == int(row["instances"]) == int(row["slices"]) * int(row["phases"])
        assert len({d.SeriesInstanceUID for d in datasets}) == 1
        assert datasets[0].SeriesInstanceUID == row["source_series_instance_uid"]
        assert [int(d.InstanceNumber) for d in datasets] == list(range(1, len(datasets) + 1))
        locations = [float(d.SliceLocation) for d in datasets[: int(row["slices"])]]
        assert np.allclose(np.diff(locations), float(datasets[0].SpacingBetweenSlices))
        if row["sequence_code"].startswith("dynamic"):
            assert sorted({int(d.TemporalPositionIdentifier) for d in datasets}) == [1, 2, 3, 4]
            assert all(d.ContrastBolusAgent for d in datasets)
        if row["sequence_code"] == "DWI":
            assert float(datasets[0].DiffusionBValue) >= 800
        if row["sequence_code"].startswith(("fsT1CE", "dynamic")):
            options = datasets[0].ScanOptions
            assert "FS" in ([options] if isinstance(options, str) else list(options))


# --- round trip through the rules -----------------------------------------------------------------
def test_every_series_maps_back_to_its_intended_code(cohort):
    rules = load_default_rules()
    series = _read_csv(cohort.series_path)
    assert any(row["sequence_code"] == UNUSED_SEQUENCE for row in series)  # the localizers
    for row in series:
        folder = _series_folder(cohort, row["patient_key"], row["series_number"])
        datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
        code, rule_id = classify_series(series_attributes(datasets), rules)
        assert code == row["sequence_code"], (row["series_description"], code, rule_id)


def test_every_naming_style_and_code_maps_back():
    """All 15 codes in all naming styles, without writing files (built from the planned headers)."""
    from imaging.phantom_protocols import _NAMES, PROTOCOLS, acquisition_header, series_names
    from imaging.sequences import SeriesAttributes

    rng = np.random.default_rng(0)
    orientation = {"axial": (1, 0, 0, 0, 1, 0), "sagittal": (0, 1, 0, 0, 0, -1),
                   "coronal": (1, 0, 0, 0, 0, -1)}
    rules = load_default_rules()
    for style in _NAMES:
        for code in SEQUENCE_CODES:
            protocol = PROTOCOLS[code]
            header = acquisition_header(protocol, style, rng)
            description, protocol_name = series_names(code, style)
            attrs = SeriesAttributes(
                series_description=description, protocol_name=protocol_name,
                image_type=tuple(header["ImageType"]), scanning_sequence=tuple(header["ScanningSequence"]),
                scan_options=tuple(header["ScanOptions"]), image_orientation=orientation[protocol.plane],
                contrast_agent="GADOTERATE" if protocol.contrast else "",
                b_values=(800.0,) if protocol.weighting == "DWI" else (),
                temporal_positions=4 if protocol.dynamic else 1,
                repetition_time=header["RepetitionTime"], echo_time=header["EchoTime"])
            assert classify_series(attrs, rules)[0] == code, (style, description)


# --- manifest and boxes ---------------------------------------------------------------------------
def test_manifest_series_and_boxes_agree_with_the_files(cohort):
    manifest = _read_csv(cohort.manifest_path)
    assert tuple(manifest[0]) == MANIFEST_COLUMNS
    assert tuple(_read_csv(cohort.series_path)[0]) == SERIES_COLUMNS
    boxes = _read_csv(cohort.boxes_path)
    assert tuple(boxes[0]) == BOX_COLUMNS
    keys = [row["patient_key"] for row in manifest]
    assert keys == sorted(p.name for p in cohort.dicom_dir.iterdir())
    assert sum(row["class"] == SARCOMA for row in manifest) == cohort.sarcomas == 3
    for row in manifest:
        length, width, height = (float(row[k]) for k in ("length_mm", "width_mm", "height_mm"))
        assert length >= width > 0 and length >= height > 0
        if row["class"] == LEIOMYOMA:
            assert row["degeneration"] in ("0", "1") and row["irregular_margin"] in ("0", "1")
        else:
            assert row["degeneration"] == row["irregular_margin"] == ""
    coded = {(r["patient_key"], r["series_number"]) for r in _read_csv(cohort.series_path)
             if r["sequence_code"] != UNUSED_SEQUENCE}
    boxed = defaultdict(int)
    for box in boxes:
        boxed[(box["patient_key"], box["series_number"])] += 1
        path = _series_folder(cohort, box["patient_key"], box["series_number"]) / \
            f"I{int(box['instance_number']):04d}.dcm"
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientID == box["patient_key"]
        assert ds.SeriesInstanceUID == box["source_series_instance_uid"]
        assert ds.SOPInstanceUID == box["source_sop_instance_uid"]
        x0, y0, x1, y1 = (int(box[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= ds.Columns and 0 <= y0 < y1 <= ds.Rows
    assert set(boxed) == coded  # every coded series shows the tumour on some slices


def test_the_tumour_lies_inside_its_boxes_and_boxes_are_tight():
    for plan in plan_cohort(patients=4, sarcoma_fraction=0.5, seed=8):
        rendered = render_patient(plan, seed=8, slice_size=64, slices_per_series=8)
        for series in rendered.series[1:]:
            for k, box in enumerate(series.boxes):
                mask = series.tumour_masks[k]
                if box is None:
                    assert not mask.any()
                    continue
                x0, y0, x1, y1 = box
                inside = np.zeros_like(mask)
                inside[y0:y1, x0:x1] = True
                assert mask.any() and not (mask & ~inside).any()
                assert mask[y0].any() and mask[y1 - 1].any() and mask[:, x0].any() and mask[:, x1 - 1].any()


# --- appearance -------------------------------------------------------------------------------------
def _tumour_contrast(rendered, code: str) -> float | None:
    """Mean stored value in the tumour / 99th percentile of the series (scanner gain cancels)."""
    for series in rendered.series:
        if series.code == code:
            mask = series.tumour_masks
            if not mask.any():
                return None
            return float(series.stored[mask].mean() / np.percentile(series.stored, 99))
    return None


def test_sarcomas_are_brighter_on_t2_and_dwi_and_darker_on_adc():
    contrasts = {label: defaultdict(list) for label in (SARCOMA, LEIOMYOMA)}
    for plan in plan_cohort(patients=16, sarcoma_fraction=0.5, seed=21, difficulty=0.5):
        rendered = render_patient(plan, seed=21, slice_size=64, slices_per_series=8)
        for code in ("T2axi", "T2sag", "DWI", "ADC"):
            value = _tumour_contrast(rendered, code)
            if value is not None:
                contrasts[plan.label][code].append(value)
    sarcoma, leiomyoma = contrasts[SARCOMA], contrasts[LEIOMYOMA]
    for code in ("T2axi", "T2sag", "DWI"):
        assert np.mean(sarcoma[code]) > np.mean(leiomyoma[code]) + 0.05, code
    assert np.mean(sarcoma["ADC"]) < np.mean(leiomyoma["ADC"])


def test_sarcoma_tumours_are_more_heterogeneous_and_irregular():
    rng = np.random.default_rng(0)
    sarcoma = phantom_anatomy.tumour_appearance(1.0, rng, irregular_margin=False)
    leiomyoma = phantom_anatomy.tumour_appearance(0.0, rng, irregular_margin=False)
    assert sarcoma["heterogeneity"] > 3 * leiomyoma["heterogeneity"]
    assert sarcoma["irregularity"] > 3 * leiomyoma["irregularity"]
    assert sarcoma["necrosis"] > 0.3 and leiomyoma["necrosis"] == 0.0
    assert sarcoma["adc"] < leiomyoma["adc"] and sarcoma["t2"] > leiomyoma["t2"]
