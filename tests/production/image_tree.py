"""Build the web image's file tree the way the Dockerfile does, without a Docker engine (none runs here).

The Dockerfile's first stage is read instruction by instruction: COPY takes the files of a clean checkout
(what git tracks, plus new files it does not ignore), RUN lines run in the copied tree with the stage's ENV,
and CMD is what `start_cmd` returns. Paths of the image (/app, /data) become folders of the test. Three kinds
of RUN step are left out because this machine already has their result: system packages (`apt-get`), the
pinned Python packages (`pip install`: the project's .venv holds requirements.lock) and the unprivileged
user (`useradd`, `chown`, `mkdir -p /data`); every other step runs as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SKIPPED_STEPS = ("apt-get", "rm -rf /var/lib/apt", "pip install", "useradd", "chown", "mkdir -p /data")


@dataclass
class ImageTree:
    app: Path
    data: Path
    env: dict = field(default_factory=dict)
    cmd: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the first stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile)
    out, stages = [], 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages += 1
            if stages > 1:
                break
        out.append((word.upper(), rest.strip()))
    return out


def _map(value: str, tree: ImageTree) -> str:
    return value.replace("/app", str(tree.app)).replace("/data", str(tree.data))


def _parse_env(rest: str) -> dict:
    return dict(item.split("=", 1) for item in shlex.split(rest))


def _checkout_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    return [name for name in listed if name and (REPO / name).is_file()]


def _copy(rest: str, tree: ImageTree) -> None:
    *sources, _dest = shlex.split(rest)
    names = _checkout_files() if sources == ["."] else sources
    for name in names:
        target = tree.app / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


def _run(rest: str, tree: ImageTree, environ: dict) -> None:
    for step in (part.strip() for part in rest.split("&&")):
        if step.startswith(SKIPPED_STEPS):
            tree.skipped.append(step)
            continue
        result = subprocess.run(_map(step, tree), shell=True, cwd=tree.app, env=environ, capture_output=True,
                                text=True, timeout=600)
        if result.returncode:
            raise RuntimeError(f"RUN {step} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")


def build(root: Path, dockerfile: Path = REPO / "Dockerfile") -> ImageTree:
    tree = ImageTree(app=root / "app", data=root / "data")
    tree.app.mkdir(parents=True)
    tree.data.mkdir(parents=True)
    venv_bin = str(REPO / ".venv" / "bin")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "DEBUG"))}
    base["PATH"] = f"{venv_bin}:{base.get('PATH', '')}"
    for word, rest in _instructions(dockerfile.read_text()):
        environ = {**base, **tree.env}
        if word == "ENV":
            tree.env.update({k: _map(v, tree) for k, v in _parse_env(rest).items()})
        elif word == "COPY":
            _copy(rest, tree)
        elif word == "RUN":
            _run(rest, tree, environ)
        elif word == "CMD":
            tree.cmd = json.loads(rest)
    tree.env = {**base, **tree.env}
    return tree
