"""The demo set-up: demo users for every role, then the steps apps register (phantom cohort, study, ...).

Apps add a step from their AppConfig.ready() with `register_step(order, name, func)`; each step must be
idempotent (`make demo` runs it on every start) and label what it makes as synthetic.
"""

from collections.abc import Callable
from dataclasses import dataclass

DEMO_PASSWORD = "demo-pass-2026"  # printed by `make demo`; demo installs only (DEBUG), never production

DEMO_USERS = (
    # username, role, reader group, years (the paper's six readers, METHOD §11)
    ("admin", "admin", None, None),
    ("coordinator", "coordinator", None, None),
    ("reader1", "reader", "specialist", 14),
    ("reader2", "reader", "specialist", 13),
    ("reader3", "reader", "specialist", 8),
    ("reader4", "reader", "practitioner", 4),
    ("reader5", "reader", "practitioner", 4),
    ("reader6", "reader", "practitioner", 2),
)


@dataclass(frozen=True)
class DemoStep:
    order: int
    name: str
    func: Callable[[Callable[[str], None]], None]  # receives a `say` function for progress lines


_STEPS: list[DemoStep] = []


def register_step(order: int, name: str, func) -> None:
    if all(step.name != name for step in _STEPS):
        _STEPS.append(DemoStep(order, name, func))


def steps() -> list[DemoStep]:
    return sorted(_STEPS, key=lambda s: s.order)
