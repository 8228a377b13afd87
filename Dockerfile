ARG TF_VERSION=2.21.0
# One image for web and CPU workers; the GPU worker builds FROM TensorFlow's GPU image (target "gpu").
# Build: docker build -t sarcoma-web .     GPU: docker build --target gpu -t sarcoma-gpu .
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml requirements.lock ./
RUN pip install -r requirements.lock
COPY . .
# Static files are collected here, in production mode (hashed names + manifest + compressed copies), into
# /app/staticfiles: part of the image, never of the /data volume. serve.sh is the one start-up script.
RUN pip install --no-deps . && scripts/serve.sh collectstatic
RUN useradd --create-home app && mkdir -p /data && chown app /data
USER app
ENV DATA_DIR=/data MEDIA_ROOT=/data/media STATIC_ROOT=/app/staticfiles SERVE_COLLECTSTATIC=0 PYTHON=python
EXPOSE 8000
CMD ["scripts/serve.sh", "web"]

# GPU worker: TensorFlow's GPU build (CUDA, cuDNN) instead of tensorflow-cpu; same project code.
ARG TF_VERSION=2.21.0
FROM tensorflow/tensorflow:${TF_VERSION}-gpu AS gpu
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml requirements.lock ./
RUN grep -v -E '^(tensorflow-cpu|tensorflow_cpu)==' requirements.lock > /tmp/req.txt && pip install -r /tmp/req.txt
COPY . .
RUN pip install --no-deps .
# The backend this image brings (TensorFlow's GPU build); `job check --gpu` reports it, its devices and a training rate.
ENV DATA_DIR=/data MEDIA_ROOT=/data/media STATIC_ROOT=/app/staticfiles PYTHON=python KERAS_BACKEND=tensorflow
CMD ["scripts/serve.sh", "gpu-worker"]
