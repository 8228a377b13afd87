"""The documentation's command examples are executable (issue 20).

Every fenced ```bash block in README.md and docs/*.md carries a marker on the line before it (blank lines
between are allowed):

    <!-- doc-test -->                    run it here, in a scratch environment
    <!-- doc-test: slow -->              run it too, but only where `slow` tests run (a Keras training)
    <!-- doc-test: not run: REASON -->   not run; the reason says why (a server, a GPU, a placeholder, minutes)

A block without a marker fails `test_every_command_block_is_marked`, so a new example must be decided on. The
blocks that run, run in document order, each as one `bash -euo pipefail` script from the repository root in a
shared scratch environment: DEBUG=1, DATA_DIR in a temporary folder (its SQLite database, embedded broker,
media and uploads), no DATABASE_URL / CELERY_BROKER_URL / REDIS_URL from the caller, `.venv/bin` first on
PATH (so `python` is the project's), and the literal path `/tmp/sarcoma-try` replaced by a folder of the
scratch environment. A block that exits non-zero fails its test with the end of its output. A block may use what
earlier blocks made (the README's cohort): run alone (`-m slow`, `-k`), a block first runs the earlier blocks
that did not run yet. A fence without a language whose first line is a command (``python manage.py ...``) must
be tagged ```bash and marked too (`test_untagged_fences_hold_no_commands`).
"""

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(bash|sh|shell|console)\s*$")
UNTAGGED = re.compile(r"^```\s*$")
COMMAND = re.compile(r"^\s*(python3?|\.venv/bin/|make|docker|sudo|curl|export|bash|manage\.py)\b")
MARKER = re.compile(r"^<!--\s*doc-test(?::\s*(?P<how>.*?))?\s*-->\s*$")
TRY_DIR = "/tmp/sarcoma-try"
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    how: str | None  # None: unmarked; "" run; "slow"; "not run: reason"
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            if FENCE.match(lines[i]):
                j = i - 1
                while j >= 0 and not lines[j].strip():
                    j -= 1
                mark = MARKER.match(lines[j].strip()) if j >= 0 else None
                end = next((k for k in range(i + 1, len(lines)) if lines[k].strip() == "```"), len(lines))
                found.append(Block(path, i + 1, (mark.group("how") or "") if mark else None,
                                   "\n".join(lines[i + 1:end])))
                i = end
            i += 1
    return found


ALL = blocks()
RUN = [b for b in ALL if b.how in ("", "slow")]


def test_every_command_block_is_marked():
    unmarked = [b.name for b in ALL if b.how is None]
    assert not unmarked, f"mark these blocks with <!-- doc-test --> or <!-- doc-test: not run: REASON -->: {unmarked}"
    for b in ALL:
        if b.how not in ("", "slow"):
            assert re.fullmatch(r"not run: \S.{4,}", b.how), f"{b.name}: 'not run: REASON' with a reason, got {b.how!r}"


def untagged_command_fences() -> list[str]:
    """Opening fences with no language whose first line reads like a command (a closing fence is skipped)."""
    found = []
    for path in DOCS:
        lines = path.read_text().splitlines()
        inside = False
        for i, line in enumerate(lines):
            if line.startswith("```"):
                if not inside and UNTAGGED.match(line) and i + 1 < len(lines) and COMMAND.match(lines[i + 1]):
                    found.append(f"{path.relative_to(REPO)}:{i + 1}")
                inside = not inside
    return found


def test_untagged_fences_hold_no_commands():
    found = untagged_command_fences()
    assert not found, f"tag these command blocks ```bash and mark them (<!-- doc-test ... -->): {found}"


def test_some_examples_run():
    assert [b for b in RUN if b.how == ""], "no documented example is run: mark at least one <!-- doc-test -->"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_BROKER_FOLDER", "REDIS_URL", "MEDIA_ROOT",
                        "UPLOAD_ROOT", "SECRET_KEY", "PSEUDONYM_KEY"}}
    env.update(DEBUG="1", DATA_DIR=str(root / "var"), PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}",
               PYTHONUNBUFFERED="1")
    return root, env


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name, marks=[pytest.mark.slow] if b.how == "slow" else [])
                                   for b in RUN])
def test_documented_commands_run(block, scratch):
    for earlier in RUN[:RUN.index(block)]:   # what it may rely on, when run alone
        _run_once(earlier, scratch)
    _run_once(block, scratch)


_outcome: dict[str, str] = {}   # block name -> "" (passed) or why it failed; each block runs once per session


def _run_once(block: Block, scratch) -> None:
    if block.name not in _outcome:
        _outcome[block.name] = _run_block(block, scratch)
    assert not _outcome[block.name], _outcome[block.name]


def _run_block(block: Block, scratch) -> str:
    root, env = scratch
    code = block.code.replace(TRY_DIR, str(root / "try"))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=BLOCK_TIMEOUT_S)
    output = (result.stdout + result.stderr)[-4000:]
    if result.returncode != 0:
        return f"{block.name} failed (exit {result.returncode}):\n{output}"
    if "Traceback" in result.stderr:
        return f"{block.name} printed a traceback:\n{output}"
    return ""
