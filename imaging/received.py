"""Instances received over DICOM networking (the listener, issue 17), held per study until their import. No Django.

Nothing identifying is ever written, not even for a moment: each instance is read, validated and classified in
memory by the import's own pipeline (`importer_files.process_bytes`: the same checks, the same keyed UIDs and
hashes, the same de-identification guard), and only what the import keeps of a file reaches the disk — its
pixels (`.npy`), geometry, keyed UIDs and keyed hashes, and the *cleaned* attributes
(`importer_files.cleaned_attributes`: protocol words only). A rejected instance leaves its reason (a fixed phrase,
never a value of the file). The import job then reads these records instead of files (source kind "received").

A study's folder: ``meta.json`` (the sending AE title, counts, when the last instance came), ``i000001.json`` +
``i000001.npy`` per accepted instance, ``rejects.jsonl`` (one ``{"index", "reason"}`` per rejected instance).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from imaging import dicom_read, importer_files, importer_sources, sequences
from imaging.importer_files import FileOutcome, FileRejected

META = "meta.json"
REJECTS = "rejects.jsonl"
_GEOMETRY_TUPLES = ("position_mm", "orientation", "pixel_spacing_mm")
_LOCK = threading.Lock()


def received_lock() -> threading.Lock:
    """The lock every record is written under; hold it to move a study's folder."""
    return _LOCK


class ReceivedStudy:
    """One study's folder of received instances; safe to add to from several associations (threads) at once."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def meta(self) -> dict:
        path = self.folder / META
        return json.loads(path.read_text()) if path.exists() else {}

    def add(self, outcome: FileOutcome | FileRejected, *, sender_ae: str, sender_address: str | None = None) -> int:
        """Record one instance (accepted or rejected); returns its index in the study, from 1. The first sender
        (AE title and address) names the node whose site the study's patient IDs belong to."""
        with _LOCK:
            self.folder.mkdir(parents=True, exist_ok=True)
            meta = self.meta()
            index = meta.get("instances", 0) + 1
            if isinstance(outcome, FileOutcome):
                name = f"i{index:06d}"
                np.save(self.folder / f"{name}.npy", outcome.pixels, allow_pickle=False)
                _write_json(self.folder / f"{name}.json", outcome_record(outcome, index))
                meta["accepted"] = meta.get("accepted", 0) + 1
            else:
                with (self.folder / REJECTS).open("a") as out:
                    out.write(json.dumps({"index": index, "reason": outcome.reason}) + "\n")
                meta["rejected"] = meta.get("rejected", 0) + 1
            senders = meta.get("senders", [])
            meta.update(instances=index, last=time.time(), senders=sorted({*senders, sender_ae}))
            meta.setdefault("first", meta["last"])
            meta.setdefault("sender", [sender_ae, sender_address])
            _write_json(self.folder / META, meta)
            return index

    def quiet_for(self) -> float:
        """Seconds since the last instance came (since the folder changed, when not even one was recorded)."""
        last = self.meta().get("last")
        if last is None:
            last = self.folder.stat().st_mtime if self.folder.exists() else time.time()
        return time.time() - last


def record(root: Path, outcome, *, fallback_study: str, sender_ae: str, sender_address: str | None = None):
    """File one instance's outcome under its (keyed) study in ``root`` — or under ``fallback_study`` when the
    pipeline could not read one — a skip counting as a reject; returns the outcome as recorded."""
    if isinstance(outcome, importer_files.FileSkipped):
        outcome = FileRejected(outcome.index, outcome.reason)
    study = getattr(outcome, "study_uid", "") or fallback_study
    ReceivedStudy(Path(root) / study).add(outcome, sender_ae=sender_ae, sender_address=sender_address)
    return outcome


def outcome_record(outcome: FileOutcome, index: int) -> dict:
    """What is written of an accepted instance: no pixels (beside it), cleaned attributes, no raw text."""
    record = {f.name: getattr(outcome, f.name) for f in fields(FileOutcome)
              if f.name not in ("pixels", "attributes", "geometries", "spool", "index")}
    record["index"] = index
    record["shape"] = list(outcome.shape)
    record["attributes"] = importer_files.cleaned_attributes(outcome.attributes)
    record["geometries"] = [asdict(g) for g in outcome.geometries]
    return record


def sources(folder: Path) -> importer_sources.Sources:
    """The study's instances as the import's sources: accepted ones to read, rejected ones with their reason."""
    folder = Path(folder)
    found = importer_sources.Sources(kind="received")
    for path in sorted(folder.glob("i*.json")):
        index = int(path.stem[1:])
        found.files.append(importer_sources.SourceFile(index, path, f"instance {index}"))
    rejects = folder / REJECTS
    for line in rejects.read_text().splitlines() if rejects.exists() else ():
        item = json.loads(line)
        found.rejected.append({"file": f"#{item['index']} (instance {item['index']})", "index": item["index"],
                               "reason": item["reason"]})
    return found


def outcomes(files: list[importer_sources.SourceFile]):
    """The recorded outcomes of ``files`` (from `sources`), pixels left in their ``.npy`` until stored."""
    for source in files:
        yield outcome_from_record(json.loads(Path(source.path).read_text()), Path(source.path).with_suffix(".npy"))


def outcome_from_record(record: dict, pixels: Path) -> FileOutcome:
    data = dict(record)
    data["attributes"] = sequences.SeriesAttributes.from_dict(data["attributes"])
    data["geometries"] = tuple(_geometry(g) for g in data["geometries"])
    data["shape"] = tuple(data["shape"])
    return FileOutcome(**data, pixels=None, spool=str(pixels))


def _geometry(values: dict) -> dicom_read.SliceGeometry:
    return dicom_read.SliceGeometry(**{k: (tuple(v) if k in _GEOMETRY_TUPLES and v is not None else v)
                                       for k, v in values.items()})


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
