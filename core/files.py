"""Atomic file writes: one way, used by every app that stores a file another process may read.

A reader (a worker, the web process, a resumed training) must never see half a file: everything is written
to a temporary name in the target's own folder (same file system, so the rename is atomic) and renamed onto
the target only once complete; on any failure the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, *, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds.

    ``suffix``: for writers that choose the format by extension (``np.savez`` appends ``.npz`` to a name
    without it; Keras saves by ``.keras``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".partial{suffix}", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path, data, **dumps_kwargs) -> None:
    """``json.dumps(data, **dumps_kwargs)`` written atomically (NaN refused unless the caller allows it)."""
    dumps_kwargs.setdefault("allow_nan", False)
    atomic_write_bytes(path, json.dumps(data, **dumps_kwargs).encode())
