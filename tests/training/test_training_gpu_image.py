"""The GPU Docker target (issue 16, item 6) as written: the same lock as the web image, TensorFlow's GPU build of
the lock's own TensorFlow version instead of tensorflow-cpu, the backend it brings declared, the gpu worker as its
command. (Building it needs the registry's multi-GB CUDA base image and a GPU host: not done in the suite.)"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _stages() -> dict[str, list[str]]:
    """The Dockerfile's lines per stage name ("" for global ARGs), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    stages, name = {"": []}, ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if match:
            name = match.group(2) or match.group(1)
            stages[name] = [line]
        else:
            stages[name].append(line)
    return stages


def _lock_version(package: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if re.match(rf"{package}==", line, re.I):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not in requirements.lock")


def test_the_gpu_target_builds_from_the_lock_with_the_locks_tensorflow_on_cuda():
    stages = _stages()
    gpu = stages["gpu"]
    assert gpu[0].startswith("FROM tensorflow/tensorflow:${TF_VERSION}-gpu")
    args = {m.group(1): m.group(2) for line in stages[""] + gpu
            if (m := re.match(r"ARG\s+(\w+)=(\S+)", line))}
    assert args["TF_VERSION"] == _lock_version("tensorflow_cpu")          # the same TensorFlow as the CPU image
    install = next(line for line in gpu if "pip install -r" in line)
    assert "requirements.lock" in install
    left_out = re.search(r"grep -v -E '([^']+)'", install).group(1)
    assert left_out == "^(tensorflow-cpu|tensorflow_cpu)=="                 # only that line: Keras and the rest
    #                                                                         come from the lock


def test_the_gpu_target_declares_its_backend_and_runs_the_gpu_worker():
    gpu = _stages()["gpu"]
    env = " ".join(line for line in gpu if line.startswith("ENV"))
    assert "KERAS_BACKEND=tensorflow" in env                               # the backend its base image brings
    assert gpu[-1] == 'CMD ["scripts/serve.sh", "gpu-worker"]'
    compose = (ROOT / "docker-compose.yml").read_text()
    service = compose[compose.index("  gpu-worker:"):]
    assert "target: gpu" in service and "KERAS_BACKEND: tensorflow" in service
