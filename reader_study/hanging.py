"""Hanging protocols (issue 15, item 9): which sequence opens in which viewport of the reading page.

A protocol is a list, one entry per viewport, of sequence codes in order of preference: the viewport opens the
first of them the case has ("ADC or DWI" = ``["ADC", "DWI"]``). It is stored on the study and applied to every
case of every reader alike. No Django here: the service validates with ``parse_protocol``, the payload applies
``choose_viewports``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from core.constants import SEQUENCE_CODES

# sagittal T2 | axial T2 | ADC or DWI (issue 15): the default of every new study
DEFAULT_PROTOCOL: tuple[tuple[str, ...], ...] = (("T2sag",), ("T2axi",), ("ADC", "DWI"))
MAX_VIEWPORTS = 4          # the viewer's largest layout (the 2×2 grid)
_CODE_BY_LOWER = {code.lower(): code for code in SEQUENCE_CODES}


def default_protocol() -> list[list[str]]:
    """A fresh copy of ``DEFAULT_PROTOCOL`` as JSON-ready lists (a model field's default)."""
    return [list(viewport) for viewport in DEFAULT_PROTOCOL]


def format_protocol(protocol: Sequence[Sequence[str]]) -> str:
    """``[["T2sag"], ["ADC", "DWI"]]`` → ``"T2sag | ADC or DWI"``: how people read and type a protocol."""
    return " | ".join(" or ".join(viewport) for viewport in protocol)


def parse_protocol(value: str | Sequence[Sequence[str]]) -> list[list[str]]:
    """A protocol from its text (``"T2sag | T2axi | ADC or DWI"``; ``,`` works as ``or``) or its list form.

    Codes are matched without regard to case and returned as ``SEQUENCE_CODES`` spells them. Raises ValueError
    naming the viewport and the code where one is not among the 15 sequence codes, where a viewport is empty,
    or where there are more than ``MAX_VIEWPORTS`` viewports.
    """
    if isinstance(value, str):
        parts = [part.strip() for part in value.split("|")]
        if parts == [""]:
            raise ValueError("name the sequences of at least one viewport, e.g. “T2sag | T2axi | ADC or DWI”")
        viewports = [[c for c in re.split(r"\s*(?:,|\bor\b)\s*", part, flags=re.IGNORECASE) if c]
                     for part in parts]
    else:
        viewports = [list(entry) for entry in value]
    if not viewports:
        raise ValueError("name the sequences of at least one viewport")
    if len(viewports) > MAX_VIEWPORTS:
        raise ValueError(f"{len(viewports)} viewports: the viewer shows at most {MAX_VIEWPORTS}")
    protocol = []
    for number, codes in enumerate(viewports, start=1):
        if not codes:
            raise ValueError(f"viewport {number} names no sequence")
        known = []
        for code in codes:
            found = _CODE_BY_LOWER.get(str(code).strip().lower())
            if found is None:
                raise ValueError(f"viewport {number}: {code!r} is not a sequence code "
                                 f"(one of {', '.join(SEQUENCE_CODES)})")
            if found not in known:
                known.append(found)
        protocol.append(known)
    return protocol


def choose_viewports(series: Sequence[tuple[int, str]], protocol: Sequence[Sequence[str]]) -> list[int]:
    """The series (keys) viewport 1, 2, … opens, for a case's ``series`` ``[(key, code), …]`` in display order.

    Each viewport takes the first series of its first code the case has that no earlier viewport took; a
    viewport none of whose codes the case has takes the first series left over (so no viewport stays blank
    while the case has images; a series without one of the 15 codes never fills one). Never longer than the
    protocol nor than the case's series.
    """
    taken: list[int | None] = []
    for codes in protocol:
        pick = next((key for code in codes for key, c in series if c == code and key not in taken), None)
        taken.append(pick)
    left = [key for key, code in series if key not in taken and code in SEQUENCE_CODES]
    chosen = []
    for pick in taken:
        if pick is None and left:
            pick = left.pop(0)
        if pick is not None:
            chosen.append(pick)
    return chosen
