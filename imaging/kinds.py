"""Job kinds of the imaging app (registered from ImagingConfig.ready())."""

from jobs import registry

registry.register(
    "import_dicom",
    "imaging.importer:run",
    queue="default",
    label="DICOM import (de-identification, sequence mapping, series store)",
)
registry.register(
    "cohort_build",
    "imaging.cohorts:run",
    queue="default",
    label="cohort build (224×224 tumour crops into the training array store)",
)
registry.register(
    "pacs_retrieve",
    "imaging.retrieve:run",
    queue="default",
    label="PACS retrieval (C-FIND, then C-GET, C-MOVE or DICOMweb; each study imported de-identified)",
)
