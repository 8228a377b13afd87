from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from core import navigation
        from jobs import kinds  # noqa: F401  registers the built-in job kinds

        navigation.register("Admin", "Jobs", "job_list", "Every long operation: progress, cancel, resume.", 10)
        navigation.register("Admin", "Django admin", "admin:index", "All records, with search and filters.", 90)
        navigation.register("Admin", "API documentation", "api_docs", "The OpenAPI schema, browsable.", 95)
