"""A model card as people read it: labelled settings with units instead of a printed Python dict, repeats, folds and
epochs counted from 1 everywhere, and the two held-out AUCs (the training curve's and the final one) explained.

Django-free: the view passes the model's stored values (its card, history, metrics, the run's configuration) and
renders what ``card_page`` returns.
"""

from dataclasses import dataclass, field

# (section, [(config key, label, how to show the value)]); a key the card has and this table lacks is shown under
# "Other settings" by its own name, so a setting added later still reaches the page.
_PLAIN, _COUNT, _PERCENT, _DEGREES, _PIXELS, _SMALL = "plain", "count", "percent", "degrees", "pixels", "small"
CONFIG_SECTIONS = (
    ("Training", (
        ("epochs", "Epochs", _COUNT),
        ("samples_per_epoch", "Samples per epoch", _COUNT),
        ("batch_size", "Batch size", _COUNT),
        ("learning_rate", "Learning rate (AMSGrad)", _SMALL),
        ("loss", "Loss", _PLAIN),
        ("seed", "Run's base seed", _PLAIN),
    )),
    ("Network", (
        ("input_size", "Input size", _PIXELS),
        ("width", "Width multiplier (alpha)", _PLAIN),
        ("batchnorm_momentum", "BatchNorm momentum", _PLAIN),
    )),
    ("Augmentation", (
        ("flip", "Flip", _PLAIN),
        ("rotation_degrees", "Rotation (±)", _DEGREES),
        ("zoom_fraction", "Zoom (±)", _PERCENT),
        ("brightness_fraction", "Brightness (± of 255)", _PERCENT),
        ("fill_mode", "Fill mode", _PLAIN),
    )),
    ("Progress scoring and running", (
        ("eval_max_slices", "Held-out slices scored after each epoch", _COUNT),
        ("loader_workers", "Batch loader threads", _COUNT),
        ("run_eagerly", "Run eagerly (debugging)", _PLAIN),
        ("fuse", "Models trained together in one step (fused)", _COUNT),
        ("precision", "Numeric precision", _PLAIN),
        ("xla", "XLA compilation", _PLAIN),
    )),
)
NONE_MEANS = {"batchnorm_momentum": "MobileNetV2's default (0.999)", "eval_max_slices": "all of them"}
SOFTWARE_LABELS = {"python": "Python", "keras": "Keras", "tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch",
                   "numpy": "NumPy"}


@dataclass(frozen=True)
class CurveRow:
    epoch: int  # 1-based, as the job's step line and the run's grid count them
    loss: float | None
    accuracy: float | None
    heldout_loss: float | None
    heldout_accuracy: float | None
    heldout_auc: float | None
    seconds: float | None


@dataclass(frozen=True)
class CardPage:
    facts: list[tuple[str, str]]
    config: list[tuple[str, list[tuple[str, str]]]]
    curves: list[CurveRow]
    final: list[tuple[str, str]]
    auc_note: str
    software: list[tuple[str, str]] = field(default_factory=list)
    intended_use: str = ""


def card_page(*, card: dict, history: list[dict], metrics: dict, config: dict) -> CardPage:
    """``card``: the stored model card (empty until the model is trained); ``history``: one dict per finished epoch;
    ``metrics``: the final held-out figures; ``config``: the run's TrainingConfig as a dict."""
    config = card.get("config") or config
    curves = [_curve_row(number, logs) for number, logs in enumerate(history, start=1)]
    return CardPage(
        facts=_facts(card),
        config=config_sections(config),
        curves=curves,
        final=_final(metrics, curves),
        auc_note=auc_note(metrics=metrics, config=config, last_epoch=len(curves)),
        software=[(SOFTWARE_LABELS.get(k, k), v) for k, v in (card.get("software") or {}).items() if v],
        intended_use=card.get("intended_use", ""),
    )


def config_sections(config: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """The configuration as labelled rows in sections, each value with its unit."""
    known = {key for _, rows in CONFIG_SECTIONS for key, _, _ in rows}
    sections = [(title, [(label, _shown(key, config[key], how)) for key, label, how in rows if key in config])
                for title, rows in CONFIG_SECTIONS]
    other = [(key.replace("_", " "), _shown(key, value, _PLAIN)) for key, value in sorted(config.items())
             if key not in known]
    return [(title, rows) for title, rows in [*sections, ("Other settings", other)] if rows]


def auc_note(*, metrics: dict, config: dict, last_epoch: int) -> str:
    """Why the curve's last held-out AUC and the final held-out AUC can differ for the same model."""
    n_slices = metrics.get("n_slices")
    if not n_slices or not last_epoch:
        return ""
    cap = config.get("eval_max_slices")
    scored = min(cap, n_slices) if cap else n_slices
    if scored < n_slices:
        return (f"The curve's held-out figures are scored after each epoch on a fixed, seeded sample of {scored:,} of "
                f"the {n_slices:,} held-out slices (eval_max_slices), to keep epochs short; the final figures score "
                f"all {n_slices:,} with the model after epoch {last_epoch}. The same model on different slices: the "
                f"curve's last AUC and the final AUC differ for that reason only. Both are slice-level (each "
                f"held-out slice scored on its own).")
    return (f"The curve and the final figures both score all {n_slices:,} held-out slices with the same model, so "
            f"the curve's last row and the final figures agree (up to rounding). Both are slice-level (each held-out "
            f"slice scored on its own).")


def _facts(card: dict) -> list[tuple[str, str]]:
    if not card:
        return []
    params = f"{card['parameters']:,}" if card.get("parameters") else "—"
    facts = [
        ("Network", card.get("model", "")),
        ("Parameters", params),
        ("Cohort", card.get("cohort", "")),
        ("Cohort data hash", card.get("data_hash", "")),
        ("Repeat, fold", f"repeat {card['repeat'] + 1}, fold {card['fold'] + 1}" if "repeat" in card else "—"),
        ("Model seed", str(card.get("seed", "—"))),
        ("Training cases (patients)", _count(card.get("n_train_cases"))),
        ("Held-out cases (patients)", _count(card.get("n_heldout_cases"))),
        ("Training time", _duration(card.get("duration_seconds"))),
    ]
    runtime = card.get("runtime") or {}
    if runtime.get("backend"):
        devices = ", ".join(runtime.get("devices") or []) or "not listed"
        facts.append(("Keras backend, devices", f"{runtime['backend']}; {devices}"))
    return facts


def _final(metrics: dict, curves: list[CurveRow]) -> list[tuple[str, str]]:
    if not metrics:
        return []
    after = f" (the model after epoch {len(curves)})" if curves else ""
    return [
        ("Held-out slices scored", _count(metrics.get("n_slices")) + after),
        ("AUC (slice level)", _number(metrics.get("auc"), 3)),
        ("Accuracy (p ≥ 0.5)", _percent(metrics.get("accuracy"))),
        ("Loss (mean cross-entropy, nats)", _number(metrics.get("loss"), 4)),
    ]


def _curve_row(number: int, logs: dict) -> CurveRow:
    return CurveRow(epoch=number, loss=logs.get("loss"), accuracy=logs.get("accuracy"),
                    heldout_loss=logs.get("heldout_loss"), heldout_accuracy=logs.get("heldout_accuracy"),
                    heldout_auc=logs.get("heldout_auc"), seconds=logs.get("seconds"))


def _shown(key: str, value, how: str) -> str:
    if value is None:
        return NONE_MEANS.get(key, "not set")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if how == _COUNT and isinstance(value, int):
        return f"{value:,}"
    if how == _PERCENT:
        return _percent(value)
    if how == _DEGREES:
        return f"{value:g}°"
    if how == _PIXELS:
        return f"{value} × {value} pixels"
    if how == _SMALL:
        return f"{value:g}"
    return str(value).replace("_", " ") if isinstance(value, str) else str(value)


def _count(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


def _number(value, places: int) -> str:
    return f"{value:.{places}f}" if isinstance(value, int | float) else "—"


def _percent(value) -> str:
    return f"{100 * value:.1f} %" if isinstance(value, int | float) else "—"


def _duration(seconds) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s"
