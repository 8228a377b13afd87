"""Read and check the two CSV files that travel with an import: the manifest and the tumour boxes.

No Django import. Problems are reported as (line, column, reason) and never quote a cell: a manifest
holds source patient keys, which identify patients.

Manifest (one row per patient; header names are case-insensitive)::

    patient_key, class, subtype, institution, length_mm, width_mm, height_mm, degeneration,
    irregular_margin

``patient_key`` is the source PatientID (0010,0020) and is required; ``class`` is ``sarcoma`` or
``leiomyoma`` (or empty: ground truth not known yet); dimensions in mm > 0; the two flags take
1/0, yes/no, true/false or empty (unknown). Other columns are ignored and listed as such.

Boxes (one row per slice that shows the tumour)::

    patient_key, series_number, instance_number, x0, y0, x1, y1      (or slice_index instead of
                                                                      instance_number)

Pixels of the stored slice, x = column, y = row, x1 and y1 exclusive; the phantom generator's
``boxes.csv`` has exactly this shape.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from core.constants import CASE_ATTRIBUTES, CLASS_CHOICES

CLASSES = tuple(value for value, _ in CLASS_CHOICES)
MANIFEST_COLUMNS = ("patient_key", "class", *CASE_ATTRIBUTES)
BOX_COLUMNS = ("patient_key", "series_number", "instance_number", "slice_index", "x0", "y0", "x1", "y1")
_ALIASES = {"truth": "class", "label": "class", "patient_id": "patient_key", "site": "institution"}
_TRUE = {"1", "yes", "y", "true", "t"}
_FALSE = {"0", "no", "n", "false", "f"}
MAX_CSV_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}{', column ' + self.column if self.column else ''}: {self.reason}"


@dataclass
class ManifestRow:
    line: int
    patient_key: str
    values: dict  # model field name -> value; only the columns present in the file


@dataclass
class BoxRow:
    line: int
    patient_key: str
    series_number: int
    instance_number: int | None
    slice_index: int | None
    box: tuple[int, int, int, int]


@dataclass
class Parsed:
    rows: list = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def messages(self, what: str) -> list[str]:
        return [f"{what} {p}" for p in self.problems]


def _read_table(path: Path, parsed: Parsed, known: tuple[str, ...]) -> list[tuple[int, dict]]:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            parsed.problems.append(Problem(0, "", f"larger than {MAX_CSV_BYTES // 1024**2} MiB"))
            return []
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        parsed.problems.append(Problem(0, "", "file not found"))
        return []
    except UnicodeDecodeError:
        parsed.problems.append(Problem(0, "", "not UTF-8 text (save the CSV as UTF-8)"))
        return []
    except OSError as error:  # its message would name the path
        parsed.problems.append(Problem(0, "", f"cannot be read ({type(error).__name__})"))
        return []
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        parsed.problems.append(Problem(1, "", "no header row"))
        return []
    columns = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    parsed.ignored_columns = sorted({c for c in columns if c and c not in known})
    parsed.columns = [c for c in columns if c in known]
    rows = []
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(columns):
                parsed.problems.append(Problem(number, "", f"{len(cells)} cells but {len(columns)} columns"))
                continue
            rows.append(
                (
                    number,
                    {col: cell.strip() for col, cell in zip(columns, cells, strict=False) if col in known},
                )
            )
    except csv.Error as error:
        parsed.problems.append(Problem(reader.line_num, "", f"not valid CSV ({type(error).__name__})"))
    return rows


def _flag(value: str) -> bool | None:
    low = value.lower()
    if low == "":
        return None
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("must be 1/0, yes/no, true/false or empty")


def _positive_mm(value: str) -> float | None:
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number of millimetres") from None
    if not 0 < number < 1000:
        raise ValueError("must be between 0 and 1000 mm")
    return number


_CONVERTERS = {
    "length_mm": _positive_mm,
    "width_mm": _positive_mm,
    "height_mm": _positive_mm,
    "degeneration": _flag,
    "irregular_margin": _flag,
}
_FIELD_NAMES = {"class": "truth"}
_TEXT_MAX = {"subtype": 64, "institution": 64}


def read_manifest(path: Path) -> Parsed:
    """Parse and check a manifest; ``rows`` are ManifestRow with model field names as keys."""
    parsed = Parsed()
    table = _read_table(path, parsed, MANIFEST_COLUMNS)
    if parsed.problems:
        return parsed
    if "patient_key" not in parsed.columns:
        parsed.problems.append(Problem(1, "patient_key", "required column missing"))
        return parsed
    seen: dict[str, int] = {}
    for line, row in table:
        key = row.get("patient_key", "")
        if not key:
            parsed.problems.append(Problem(line, "patient_key", "empty"))
            continue
        if key in seen:
            parsed.problems.append(Problem(line, "patient_key", f"same patient as line {seen[key]}"))
            continue
        seen[key] = line
        values = {}
        for column, cell in row.items():
            if column == "patient_key":
                continue
            try:
                if column == "class":
                    if cell.lower() not in (*CLASSES, ""):
                        raise ValueError(f"must be {' or '.join(CLASSES)} (or empty)")
                    value = cell.lower()
                elif column in _CONVERTERS:
                    value = _CONVERTERS[column](cell)
                else:
                    if len(cell) > _TEXT_MAX.get(column, 64):
                        raise ValueError(f"longer than {_TEXT_MAX.get(column, 64)} characters")
                    value = cell
            except ValueError as error:
                parsed.problems.append(Problem(line, column, str(error)))
                continue
            values[_FIELD_NAMES.get(column, column)] = value
        parsed.rows.append(ManifestRow(line, key, values))
    return parsed


def _int(value: str, *, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be a whole number") from None
    if number < minimum:
        raise ValueError(f"must be at least {minimum}")
    return number


def read_boxes(path: Path) -> Parsed:
    """Parse and check a boxes CSV; ``rows`` are BoxRow."""
    parsed = Parsed()
    table = _read_table(path, parsed, BOX_COLUMNS)
    if parsed.problems:
        return parsed
    present = set(parsed.columns)
    missing = [c for c in ("patient_key", "series_number", "x0", "y0", "x1", "y1") if c not in present]
    if not ({"instance_number", "slice_index"} & present):
        missing.append("instance_number or slice_index")
    if missing:
        parsed.problems.append(Problem(1, ", ".join(missing), "required column(s) missing"))
        return parsed
    for line, row in table:
        try:
            if not row.get("patient_key"):
                raise _CellError("patient_key", "empty")
            numbers = {}
            for column in ("series_number", "x0", "y0", "x1", "y1"):
                try:
                    numbers[column] = _int(row.get(column, ""))
                except ValueError as error:
                    raise _CellError(column, str(error)) from None
            instance = slice_index = None
            if row.get("instance_number"):
                try:
                    instance = _int(row["instance_number"])
                except ValueError as error:
                    raise _CellError("instance_number", str(error)) from None
            elif row.get("slice_index"):
                try:
                    slice_index = _int(row["slice_index"])
                except ValueError as error:
                    raise _CellError("slice_index", str(error)) from None
            else:
                raise _CellError("instance_number", "empty (give instance_number or slice_index)")
            if numbers["x1"] <= numbers["x0"] or numbers["y1"] <= numbers["y0"]:
                raise _CellError("x1/y1", "the box is empty (x1 must exceed x0 and y1 must exceed y0)")
        except _CellError as error:
            parsed.problems.append(Problem(line, error.column, error.reason))
            continue
        parsed.rows.append(
            BoxRow(
                line,
                row["patient_key"],
                numbers["series_number"],
                instance,
                slice_index,
                (numbers["x0"], numbers["y0"], numbers["x1"], numbers["y1"]),
            )
        )
    return parsed


class _CellError(Exception):
    def __init__(self, column: str, reason: str):
        super().__init__(reason)
        self.column, self.reason = column, reason
