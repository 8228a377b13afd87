"""Domain constants that have one meaning everywhere (METHOD.md §1, §2).

Django-free so the science modules can import them.
"""

# The 15 MRI sequence codes, in the order of the paper's Table 1 (METHOD §2).
SEQUENCE_CODES: tuple[str, ...] = (
    "ADC", "DWI", "dynamicaxi", "dynamicsag", "fsT1axi", "fsT1CEaxi", "fsT1CEcor",
    "fsT1CEsag", "fsT1sag", "fsT2axi", "T1axi", "T1sag", "T2axi", "T2cor", "T2sag",
)
UNUSED_SEQUENCE = "unused"
N_SEQUENCES = len(SEQUENCE_CODES)

# Ground-truth classes (METHOD §1): sarcoma is the positive class.
SARCOMA = "sarcoma"
LEIOMYOMA = "leiomyoma"
CLASS_CHOICES = ((SARCOMA, "Sarcoma"), (LEIOMYOMA, "Leiomyoma"))

# A case's clinical attributes besides its class, in one order for the manifest, the model form, the admin
# and the API (METHOD §2: subtype and institution for the tables, size and the two descriptors).
CASE_ATTRIBUTES: tuple[str, ...] = (
    "subtype", "institution", "length_mm", "width_mm", "height_mm", "degeneration", "irregular_margin",
)
POSITIVE_CLASS = SARCOMA

SARCOMA_SUBTYPES: tuple[str, ...] = (
    "leiomyosarcoma", "endometrial stromal sarcoma", "adenosarcoma",
    "undifferentiated sarcoma", "spindle-cell sarcoma", "STUMP",
)

# Cross-validation defaults (METHOD §4, §6).
N_FOLDS = 6
N_REPEATS = 24
INPUT_SIZE = 224
