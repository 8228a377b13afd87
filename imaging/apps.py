from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "imaging"
    verbose_name = "Imaging"

    def ready(self) -> None:
        from core import demo, navigation
        from imaging import kinds  # noqa: F401  registers import_dicom and cohort_build
        from imaging.services_demo import demo_cohort_build, demo_phantoms_import

        for role in ("Coordinator", "Admin"):
            navigation.register(
                role,
                "Import DICOM",
                "imaging_upload",
                "Upload a zip or files; de-identified on the way in.",
                20,
            )
            navigation.register(
                role,
                "Cases",
                "imaging_case_list",
                "Search cases, their series, tumour boxes and ground truth.",
                21,
            )
            navigation.register(
                role,
                "Sequence mapping",
                "imaging_mapping",
                "Which rule mapped each series; overrides; the rules as JSON.",
                22,
            )
            navigation.register(
                role,
                "Cohorts",
                "imaging_cohort_list",
                "Frozen case sets and their training array stores.",
                23,
            )
            navigation.register(
                role,
                "Imports",
                "imaging_import_list",
                "Past imports with every rejected file and its reason.",
                24,
            )
        demo.register_step(20, "synthetic phantom cohort (60 patients), imported", demo_phantoms_import)
        demo.register_step(25, "demo cohort array store", demo_cohort_build)
