from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    name = "analysis"
    verbose_name = "Analysis"

    def ready(self) -> None:
        """Put the study statistics on the coordinator's and the admin's landing pages."""
        from core import navigation

        for role in ("Coordinator", "Admin"):
            navigation.register(role, "Study statistics", "analysis_study_list",
                                "Reader and DNN metrics, t-tests, MRMC exam 1 vs exam 2, the paper's figures "
                                "and CSV/JSON exports", order=45)
