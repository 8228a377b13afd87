"""What an import reads: the files under a folder, inside a zip archive, or listed by a DICOMDIR.

No Django import. Three concerns live here:

* **Enumeration** (`enumerate_sources`): a folder is walked recursively; a zip is first extracted
  with `extract_zip_safely`; a DICOMDIR given as the path lists its files. Files without extensions
  are read like any other. OS clutter (``.DS_Store``, ``__MACOSX/``) and companion text files
  (``*.csv``, ``*.txt``, ... that do not start like a DICOM file) are *skipped*, not rejected.
* **Zip safety** (`extract_zip_safely`): members with absolute paths, ``..`` or drive letters,
  symbolic links, encrypted members and members whose path another member already took (a file ``X``
  beside ``X/IM0001``) are refused one by one; an archive that would expand past a
  total size or member count, or a member compressed suspiciously well (a decompression bomb), is
  stopped. Sizes are counted on the bytes actually written, never trusted from the archive header.
* **File labels** (`file_label`): file names can identify a patient ("SMITH_JANE_MRI.dcm", or an MRN
  as a name), so a file is reported by its **index** (1-based position in the sorted list of input
  files: ``find PATH -type f | LC_ALL=C sort``) and by its name only when the name has the shape of
  a scanner's or PACS export's counter (``IM0007``, ``I0001.dcm``, ``4919``); otherwise "name hidden".
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ZIP_SIGNATURE = b"PK\x03\x04"
DICM_OFFSET = 128

# Defaults of the archive guards; the Django side may override them from settings.
DEFAULT_MAX_TOTAL_BYTES = 20 * 1024**3  # 20 GiB expanded
DEFAULT_MAX_MEMBERS = 200_000
DEFAULT_MAX_RATIO = 200.0  # expanded / compressed size of one member
_RATIO_MIN_BYTES = 1024 * 1024  # tiny members may compress well without harm
_COPY_CHUNK = 1024 * 1024
MEMBER_CONFLICT = (
    "member conflicts with another member's path (a file and a folder of the same name, or the same "
    "name twice): not extracted"
)

_OS_CLUTTER = {".ds_store", "thumbs.db", "desktop.ini", "__macosx", ".spotlight-v100", ".trashes"}
COMPANION_EXTENSIONS = {".csv", ".txt", ".md", ".json", ".xml", ".html", ".htm", ".ini", ".log", ".inf"}

_SAFE_NAME = re.compile(
    r"^(?:(?:IM|IMG|I|MR|EE|SE|Z|DCM)[_-]?\d{1,8}|\d{1,5})(?:\.(?:dcm|dicom|ima))?$", re.IGNORECASE
)
_SAFE_NAMES = {"DICOMDIR"}


class UnsafeArchive(Exception):
    """The whole archive is refused (not a zip, or it would expand beyond the limits)."""


@dataclass(frozen=True)
class SourceFile:
    """One input file: its index (for reports), where it is, and what to call it in a report."""

    index: int
    path: Path
    name: str  # the sanitised name, see `sanitised_name`

    @property
    def label(self) -> str:
        return f"#{self.index} ({self.name})"


@dataclass
class Sources:
    """The files to read, and what was set aside before reading (with reasons, labelled safely)."""

    files: list[SourceFile] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # clutter and companion files: not errors
    rejected: list[dict] = field(default_factory=list)  # archive members refused by the zip guard
    kind: str = "folder"  # folder, zip, dicomdir, file


def sanitised_name(name: str) -> str:
    """The file's base name when it looks like an export counter, else 'name hidden'."""
    base = PurePosixPath(str(name).replace("\\", "/")).name
    if base in _SAFE_NAMES or _SAFE_NAME.match(base):
        return base
    return "name hidden"


def file_label(index: int, name: str) -> str:
    return f"#{index} ({sanitised_name(name)})"


def looks_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == ZIP_SIGNATURE
    except OSError:
        return False


def starts_like_dicom(path: Path) -> bool:
    """True when the file has the Part 10 'DICM' marker after its 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(DICM_OFFSET + 4)
    except OSError:
        return False
    return head[DICM_OFFSET : DICM_OFFSET + 4] == b"DICM"


def _is_clutter(relative: PurePosixPath) -> bool:
    return any(part.lower() in _OS_CLUTTER or part.startswith("._") for part in relative.parts)


def _walk(root: Path) -> Iterator[Path]:
    """Regular files under root (symbolic links to files followed, to folders not), any order."""
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in names:
            yield Path(folder) / name


def enumerate_folder(root: Path, *, kind: str = "folder") -> Sources:
    """Every file under ``root``, sorted by relative path (byte order), indexed from 1."""
    sources = Sources(kind=kind)
    relatives = sorted((p.relative_to(root).as_posix() for p in _walk(root)), key=lambda s: s.encode())
    index = 0
    for relative in relatives:
        index += 1
        path = root / relative
        rel = PurePosixPath(relative)
        if _is_clutter(rel):
            sources.skipped.append(
                {
                    "file": file_label(index, rel.name),
                    "index": index,
                    "reason": "operating-system clutter file",
                }
            )
            continue
        if rel.suffix.lower() in COMPANION_EXTENSIONS and not starts_like_dicom(path):
            sources.skipped.append(
                {
                    "file": file_label(index, rel.name),
                    "index": index,
                    "reason": f"companion file ({rel.suffix.lower()}), not an image",
                }
            )
            continue
        sources.files.append(SourceFile(index, path, sanitised_name(rel.name)))
    return sources


def enumerate_dicomdir(dicomdir: Path) -> Sources:
    """The files a DICOMDIR lists, in record order (missing ones are reported by the reader)."""
    from imaging.dicom_read import iter_dicomdir_files

    sources = Sources(kind="dicomdir")
    for index, path in enumerate(iter_dicomdir_files(dicomdir), start=1):
        sources.files.append(SourceFile(index, path, sanitised_name(path.name)))
    return sources


def enumerate_sources(path: Path, *, extract_to: Path, limits: ZipLimits | None = None) -> Sources:
    """The files of an import source: a folder, a zip (extracted under ``extract_to``), a DICOMDIR
    or a single file. Raises FileNotFoundError, or UnsafeArchive for a refused archive."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError("the import source does not exist")
    if path.is_dir():
        return enumerate_folder(path)
    if looks_like_zip(path):
        rejected = extract_zip_safely(path, extract_to, limits=limits or ZipLimits())
        sources = enumerate_folder(extract_to, kind="zip")
        sources.rejected = rejected
        return sources
    if path.name.upper() == "DICOMDIR":
        return enumerate_dicomdir(path)
    return Sources(files=[SourceFile(1, path, sanitised_name(path.name))], kind="file")


# --- zip archives -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipLimits:
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS
    max_ratio: float = DEFAULT_MAX_RATIO


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, or None when it could leave the extraction folder."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or "\x00" in text:
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        return None
    return PurePosixPath(*parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def extract_zip_safely(archive: Path, dest: Path, *, limits: ZipLimits) -> list[dict]:
    """Extract ``archive`` into ``dest``; return the members refused one by one, labelled safely.

    Raises UnsafeArchive when the archive cannot be read, has too many members, or expands beyond
    ``limits.max_total_bytes`` (whatever its header claims): then nothing is imported from it.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        handle = zipfile.ZipFile(archive)
    except Exception:  # BadZipFile, OSError, a name that is not UTF-8, ...: messages can quote names
        raise UnsafeArchive("not a readable zip archive") from None
    rejected: list[dict] = []
    total = 0
    with handle:
        members = [m for m in handle.infolist() if not m.is_dir()]
        if len(members) > limits.max_members:
            raise UnsafeArchive(
                f"the archive holds {len(members)} files, more than the limit of {limits.max_members}"
            )
        declared = sum(m.file_size for m in members)
        if declared > limits.max_total_bytes:  # the header can lie the other way: counted again below
            raise UnsafeArchive(
                f"the archive would expand to {_gib(declared)}, beyond the limit of "
                f"{_gib(limits.max_total_bytes)}; nothing was imported from it"
            )
        for number, info in enumerate(members, start=1):
            label = f"archive member {file_label(number, info.filename)}"
            relative = _safe_member_path(info.filename)
            reason = None
            if relative is None:
                reason = "unsafe path in the archive (absolute or with '..'): not extracted"
            elif _is_symlink(info):
                reason = "symbolic link in the archive: not extracted"
            elif info.flag_bits & 0x1:
                reason = "encrypted archive member: not extracted"
            elif (
                info.compress_size
                and info.file_size >= _RATIO_MIN_BYTES
                and info.file_size / info.compress_size > limits.max_ratio
            ):
                reason = (
                    f"compression ratio over {limits.max_ratio:.0f}:1 (looks like a decompression bomb): "
                    "not extracted"
                )
            if reason:
                rejected.append({"file": label, "index": number, "reason": reason})
                continue
            target = dest / relative
            try:
                written = _copy_member(
                    handle, info, target, budget=limits.max_total_bytes - total, max_ratio=limits.max_ratio
                )
            except _MemberTooLarge:
                shutil.rmtree(dest, ignore_errors=True)
                raise UnsafeArchive(
                    f"the archive expands beyond the limit of {_gib(limits.max_total_bytes)}; "
                    "nothing was imported from it"
                ) from None
            except _MemberProblem as problem:  # our own fixed phrases; the partial file is already gone
                rejected.append({"file": label, "index": number, "reason": str(problem)})
                continue
            total += written
    return rejected


class _MemberTooLarge(Exception):
    pass


class _MemberProblem(Exception):
    pass


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB" if n >= 1024**3 else f"{n / 1024**2:.0f} MiB"


def _copy_member(
    handle: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, budget: int, max_ratio: float
) -> int:
    """Stream one member to ``target``, counting real bytes against the budget and the ratio.

    Raises _MemberProblem (a fixed phrase, never an exception's message: an OSError's names the path,
    which holds the member's name) or _MemberTooLarge. The target is created exclusively, so a member
    whose path is taken by another member (a file ``X`` and an entry ``X/IM0001``, in either order, or
    the same name twice) is refused and never overwrites or removes the other one's file. A partial
    file of a refused member is removed.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "xb")
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise _MemberProblem(MEMBER_CONFLICT) from None
    except OSError as error:  # a name too long for the file system, no space, ...
        raise _MemberProblem(f"archive member cannot be extracted ({type(error).__name__})") from None
    written = 0
    try:
        with out, handle.open(info) as source:
            while True:
                chunk = source.read(_COPY_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > budget:
                    raise _MemberTooLarge()
                if written > info.file_size:
                    raise _MemberProblem("archive member larger than its header says: not extracted")
                if (
                    written >= _RATIO_MIN_BYTES
                    and info.compress_size
                    and written / info.compress_size > max_ratio
                ):
                    raise _MemberProblem(
                        f"compression ratio over {max_ratio:.0f}:1 (looks like a "
                        "decompression bomb): not extracted"
                    )
                out.write(chunk)
    except (_MemberTooLarge, _MemberProblem):
        target.unlink(missing_ok=True)
        raise
    except Exception as error:  # BadZipFile, OSError, EOFError, NotImplementedError, zlib.error, ...
        target.unlink(missing_ok=True)
        raise _MemberProblem(f"archive member cannot be extracted ({type(error).__name__})") from None
    return written
