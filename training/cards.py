"""Model cards: what a trained model is, what it learnt from, how it was made and how it did.

Django-free: the service passes plain values in and stores the dict it gets back.
"""

import platform
import sys
from importlib import metadata

PARAMS_NOTE = ("MobileNetV2 (keras.applications, weights=None) with a 2-class softmax head: 2,260,546 "
               "parameters at 224×224, width 1.0; the paper's 3,538,984 counts Keras's 1000-class head.")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict:
    return {
        "python": platform.python_version(),
        "keras": _version("keras"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "jax": _version("jax"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
    }


def backend_and_devices() -> dict:
    """The Keras backend and the devices it sees (imported lazily: this runs on the worker)."""
    import keras

    backend = keras.backend.backend()
    try:
        devices = [str(d) for d in keras.distribution.list_devices()]
    except Exception:  # some backends do not implement device listing
        devices = []
    return {"backend": backend, "devices": devices, "host_platform": platform.platform(),
            "python_executable": sys.executable.rsplit("/", 1)[-1]}


def model_card(*, cohort_name: str, content_hash: str, repeat: int, fold: int, seed: int, config: dict,
               history: list[dict], heldout: dict, seconds: float, n_train_cases: int, n_heldout_cases: int,
               n_params: int | None, runtime: dict) -> dict:
    """The card stored with each .keras file (and shown on its page)."""
    return {
        "model": "MobileNetV2, 2-class head", "parameters": n_params, "parameters_note": PARAMS_NOTE,
        "cohort": cohort_name, "data_hash": content_hash, "repeat": repeat, "fold": fold, "seed": seed,
        "config": config, "software": software_versions(), "runtime": runtime,
        "duration_seconds": round(seconds, 1), "training_curves": history, "heldout_metrics": heldout,
        "n_train_cases": n_train_cases, "n_heldout_cases": n_heldout_cases,
        "intended_use": "research reader studies: second opinion on uterine sarcoma vs leiomyoma on pelvic MRI",
    }
