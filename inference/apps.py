from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "Inference"

    def ready(self) -> None:
        from core import demo, navigation
        from imaging import frozen
        from inference import kinds  # noqa: F401  registers the evaluation and case_prediction job kinds
        from inference.demo import demo_ensemble
        from inference.stale import mark_evaluations_stale

        frozen.register_stale_marker(mark_evaluations_stale)

        demo.register_step(50, "demo ensemble (tiny, synthetic), trained and evaluated", demo_ensemble)

        navigation.register("Admin", "Evaluations", "inference_evaluations",
                            "Evaluate a trained run: ensembles, the 32,767-set search, sarcoma likelihoods.", 22)
        navigation.register("Coordinator", "Evaluations", "inference_evaluations",
                            "Evaluation results, the sequence set behind the likelihoods, per-case AI results.", 61)
        navigation.register("Admin", "External validation", "inference_external_validations",
                            "Apply a finished evaluation's frozen model set to an external cohort.", 23)
        navigation.register("Coordinator", "External validation", "inference_external_validations",
                            "A frozen model set on a cohort that shares no patient with its training cohort.", 62)
