"""The job kinds: each names the function that does the work and the queue it runs on.

An app registers its kinds in `jobs.kinds` (or its own module imported from an AppConfig.ready()).
A runner is `runner(job, ctx)`; it must be resumable: run again after a crash, it skips finished work.
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class JobKind:
    name: str
    runner_path: str  # "package.module:function", imported lazily so the web stays light
    queue: str = "default"
    label: str = ""

    def runner(self) -> Callable:
        module, _, func = self.runner_path.partition(":")
        return getattr(import_module(module), func)


_KINDS: dict[str, JobKind] = {}


def register(name: str, runner_path: str, *, queue: str = "default", label: str = "") -> JobKind:
    kind = JobKind(name=name, runner_path=runner_path, queue=queue, label=label or name.replace("_", " "))
    _KINDS[name] = kind
    return kind


def get(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown job kind {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def all_kinds() -> list[JobKind]:
    return sorted(_KINDS.values(), key=lambda k: k.name)
