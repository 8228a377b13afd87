from django.urls import path

from inference import api, api_external, views, views_external

urlpatterns = [
    path("inference/evaluations/", views.evaluation_list, name="inference_evaluations"),
    path("inference/evaluations/new/", views.evaluation_start, name="inference_evaluation_start"),
    path("inference/evaluations/<int:pk>/", views.evaluation_detail, name="inference_evaluation"),
    path("inference/evaluations/<int:pk>/subset/", views.evaluation_subset, name="inference_evaluation_subset"),
    path("inference/evaluations/<int:pk>/subsets.csv", views.evaluation_csv, name="inference_evaluation_csv"),
    path("inference/evaluations/<int:pk>/figures/<slug:name>.svg", views.evaluation_figure,
         name="inference_evaluation_figure"),
    path("inference/evaluations/<int:pk>/heat-maps/", views.heat_maps_start, name="inference_heat_maps_start"),
    path("inference/evaluations/<int:pk>/heat-maps/<int:case_pk>.png", views.heat_map_png,
         name="inference_heat_map_png"),
    path("inference/external/", views_external.external_validation_list, name="inference_external_validations"),
    path("inference/external/new/", views_external.external_validation_start,
         name="inference_external_validation_start"),
    path("inference/external/<int:pk>/", views_external.external_validation_detail,
         name="inference_external_validation"),
    path("inference/external/<int:pk>/<slug:name>.csv", views_external.external_validation_csv,
         name="inference_external_validation_csv"),
    path("inference/external/<int:pk>/figures/<slug:name>.svg", views_external.external_validation_figure,
         name="inference_external_validation_figure"),
    path("inference/predict/", views.case_predict, name="inference_predict"),
    path("api/inference/evaluations/", api.EvaluationListApi.as_view(), name="inference_api_evaluations"),
    path("api/inference/evaluations/<int:pk>/", api.EvaluationApi.as_view(), name="inference_api_evaluation"),
    path("api/inference/evaluations/<int:pk>/cases/", api.EvaluationCaseResultsApi.as_view(),
         name="inference_api_evaluation_cases"),
    path("api/inference/external/", api_external.ExternalValidationListApi.as_view(),
         name="inference_api_external_validations"),
    path("api/inference/external/<int:pk>/", api_external.ExternalValidationApi.as_view(),
         name="inference_api_external_validation"),
]
