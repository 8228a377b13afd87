from django.apps import AppConfig


class ReaderStudyConfig(AppConfig):
    name = "reader_study"
    verbose_name = "Reader study"

    def ready(self):
        """Put the reader-study pages on the role landing pages, and the demo study into `make demo`."""
        from core import demo, navigation
        from imaging import frozen
        from reader_study.demo import demo_study
        from reader_study.freezes import mark_studies_stale, study_freezes
        from reader_study.volume_grants import revoke_corrected_cases

        frozen.register_freezer(study_freezes)
        frozen.register_stale_marker(mark_studies_stale)
        frozen.register_stale_marker(revoke_corrected_cases)

        navigation.register("Reader", "My studies", "reader_study:my_studies",
                            "Read the cases of your studies: exam 1, then exam 2 after the washout", order=10)
        navigation.register("Coordinator", "Reader studies", "reader_study:study_list",
                            "Create studies, enrol readers, open and close them, follow every reader's "
                            "progress", order=40)
        navigation.register("Coordinator", "New reader study", "reader_study:study_create",
                            "Choose cases or a cohort, the evaluation exam 2 shows, and the readers",
                            order=41)
        demo.register_step(80, "reader study (synthetic)", demo_study)
