"""Job kinds of the inference app (all on the gpu queue: they load the trained models)."""

from jobs import registry

registry.register("evaluation", "inference.runners:evaluation_run", queue="gpu",
                  label="evaluation (out-of-fold predictions, ensembles, the 32,767-set search, likelihoods)")
registry.register("case_prediction", "inference.runners:case_prediction_run", queue="gpu",
                  label="new-patient prediction (every model of a run on one case)")
registry.register("external_validation", "inference.runners_external:external_validation_run", queue="gpu",
                  label="external validation (a frozen model set applied to a cohort with no training patient)")
registry.register("heat_maps", "inference.runners_saliency:heat_maps_run", queue="gpu",
                  label="heat-maps (Grad-CAM of the ensemble on every tumour slice of the evaluation's cases)")
