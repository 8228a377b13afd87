"""Statistics API (DRF, session auth): the numbers of the statistics page as JSON, for coordinators. Output:
analysis/serializers.py."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from accounts.permissions import require_role
from accounts.roles import COORDINATOR
from analysis import exports, selectors, services
from analysis.serializers import StudyStatisticsSerializer
from core.serializers import errors


@extend_schema(responses={200: StudyStatisticsSerializer, **errors(403, 404)},
               summary="A study's statistics (the statistics page as JSON)")
@api_view(["GET"])
def study_statistics_api(request, pk: int):
    """Per reader x exam metrics, group means ± SD, DNN figures, every t-test and the MRMC results.

    Table values are the export CSVs' text cells (percent with 2 decimals, AUC 4 decimals, empty when
    undefined); ``mrmc`` is the mrmc.json document with full precision.
    """
    require_role(request.user, COORDINATOR, "study statistics are for coordinators")
    try:
        study = selectors.study_for_analysis(request.user, pk)
    except ObjectDoesNotExist:
        raise NotFound("no such study") from None
    report = services.study_report(study=study)
    stats = report.stats
    return Response(StudyStatisticsSerializer({
        "study": {"id": study.pk, "name": study.name, "status": study.status, "synthetic": report.synthetic},
        "n_cases": len(stats.cases), "n_sarcoma": stats.n_positive, "n_leiomyoma": stats.n_negative,
        "cases_without_truth": report.cases_without_truth,
        "complete_readers": {str(exam): list(codes) for exam, codes in stats.complete_readers.items()},
        "notes": list(stats.notes),
        "intervals": exports.INTERVALS_NOTE, "dnn_source": exports.dnn_source_text(stats),
        "reader_statistics": exports.reader_statistics_table(stats).as_dicts(),
        "group_statistics": exports.group_statistics_table(stats).as_dicts(),
        "dnn": exports.dnn_table(report).as_dicts(),
        "comparisons": exports.comparisons_table(stats).as_dicts(),
        "mrmc": exports.mrmc_document(stats),
    }).data)
