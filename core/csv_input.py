"""Open a user's CSV file and check its header, with errors people can act on. No Django import.

One reader for the command-line inputs that take a CSV (``analysis.mrmc_io`` for reader studies,
``inference.prediction_io`` for out-of-fold predictions): the file is opened as UTF-8 (a byte-order mark is
dropped), the header must name every required column once (any order, any case, extra columns ignored),
blank lines are skipped, and every problem names the file and, where there is one, the line.

Each caller passes its own exception class (a ``ValueError`` subclass), so its command keeps catching the one
error it knows; what a row means stays with the caller.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path


def open_text(path: Path, error: type[Exception]):
    """``path`` opened for the csv module; a missing, unreadable or directory path raises ``error``."""
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None


def _column_positions(path: Path, header: list[str], required: Sequence[str],
                      error: type[Exception]) -> dict[str, int]:
    names = [h.strip().lower() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise error(f"{path}, line 1 (header): missing column(s) {', '.join(missing)}; expected "
                    f"{','.join(required)}; found {', '.join(repr(h) for h in header)}")
    twice = [c for c in required if names.count(c) > 1]
    if twice:
        raise error(f"{path}, line 1 (header): column(s) {', '.join(twice)} appear twice")
    return {c: names.index(c) for c in required}


def csv_rows(path, required: Sequence[str], error: type[Exception]) -> Iterator[tuple[int, dict[str, str] | str]]:
    """Yield ``(line, {column: stripped value})`` for each non-blank data row of ``path``.

    A row whose number of fields differs from the header's is yielded as ``(line, reason)`` with the reason
    as text, so the caller decides whether to stop there or to collect it with its other problems. An empty
    file, a header lacking a required column or naming one twice, text that is not UTF-8 and malformed CSV
    raise ``error`` naming the file (and the line).
    """
    path = Path(path)
    with open_text(path, error) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise error(f"{path}: the file is empty (expected the header {','.join(required)})")
            where = _column_positions(path, header, required, error)
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    yield reader.line_num, f"{len(fields)} fields where the header has {len(header)}"
                    continue
                yield reader.line_num, {c: fields[i].strip() for c, i in where.items()}
        except UnicodeDecodeError:
            raise error(f"{path}: not UTF-8 text (is it a CSV file?)") from None
        except csv.Error as exc:
            raise error(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
