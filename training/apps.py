from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self) -> None:
        from core import navigation
        from training import kinds  # noqa: F401  registers the training job kind

        navigation.register("Admin", "Start training", "training_start",
                            "Cross-validated MobileNetV2 ensemble on a cohort (24 repeats × 6 folds).", 20)
        navigation.register("Admin", "Training runs", "training_runs", "Runs and their model grids and cards.", 21)
        navigation.register("Coordinator", "Training runs", "training_runs", "Runs, model grids and model cards.", 60)
