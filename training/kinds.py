"""Job kinds of the training app."""

from jobs import registry

registry.register("training", "training.services:training_dispatch", queue="default",
                  label="training (repeats × folds MobileNetV2 models on the gpu queue)")
