"""When exam 2 opens to a reader (METHOD §11): after exam 1 is finished and the washout has passed.

No Django here: datetimes in, a decision out, so the rule is tested on its own and the server applies it
in one place (selectors and services both call ``exam2_gate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Gate:
    is_open: bool
    reason: str                        # for people: why it is closed, or "" when open
    opens_at: datetime | None = None   # when the washout ends (None: exam 1 not finished yet)


def washout_ends_at(last_exam1_read_at: datetime, washout_days: int) -> datetime:
    """The washout runs from the reader's last exam-1 read (their last change to an answer)."""
    if washout_days < 0:
        raise ValueError(f"washout_days: must be 0 or more, not {washout_days}")
    return last_exam1_read_at + timedelta(days=washout_days)


def exam2_gate(*, exam1_finished_at: datetime | None, last_exam1_read_at: datetime | None,
               washout_days: int, now: datetime, overridden: bool = False) -> Gate:
    """Is exam 2 open to this reader now? An audited coordinator override skips the washout only."""
    if exam1_finished_at is None or last_exam1_read_at is None:
        return Gate(False, "exam 2 opens after you have finished exam 1")
    ends = washout_ends_at(last_exam1_read_at, washout_days)
    if overridden or now >= ends:
        return Gate(True, "", ends)
    return Gate(False, f"exam 2 opens on {ends:%Y-%m-%d %H:%M %Z}, {washout_days} days after your last "
                       "exam-1 read (washout)", ends)
