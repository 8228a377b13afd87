"""k-of-n consensus of reader descriptor scores (METHOD §1: at least 4 of 6 radiologists said so).

No Django here.
"""

from __future__ import annotations


def k_of_n(yes: int, no: int, *, k: int, n: int) -> bool | None:
    """True once ``k`` readers said yes; False once so many said no that ``k`` yeses are out of reach.

    ``None`` while it is still open (not everyone has scored and either outcome is possible). ``n`` is the
    number of readers who score the case. Deciding early is safe: later scores cannot change the outcome.
    """
    if not 1 <= k <= n:
        raise ValueError(f"k: must lie between 1 and n={n}, not {k}")
    if yes < 0 or no < 0 or yes + no > n:
        raise ValueError(f"scores: {yes} yes + {no} no must be non-negative and at most n={n}")
    if yes >= k:
        return True
    if no > n - k:
        return False
    return None
