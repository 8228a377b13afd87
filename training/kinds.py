"""Job kinds of the training app."""

from jobs import registry

registry.register("training", "training.services:training_dispatch", queue="default",
                  label="training (repeats × folds MobileNetV2 models on the gpu queue)")
registry.register("worker_check_gpu", "training.device_check:run", queue="gpu",
                  label="GPU worker check (database, files, deep-learning backend and devices, training rate)")
