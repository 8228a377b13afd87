"""Imaging test factories: SYNTHETIC cases with a unique keyed-hash stand-in."""

import hashlib
import itertools

from core.constants import LEIOMYOMA
from imaging.models import Case

_n = itertools.count(1)


def make_synthetic_case(truth=LEIOMYOMA, *, prefix: str = "C-TST", **extra) -> Case:
    """A SYNTHETIC case with a fresh pseudonym ``<prefix><n>`` and a unique source key hash."""
    n = next(_n)
    return Case.objects.create(pseudonym=f"{prefix}{n:05d}", truth=truth, is_synthetic=True,
                               source_key_hash=hashlib.sha256(f"{prefix}-{n}".encode()).hexdigest(), **extra)
