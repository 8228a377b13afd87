from django.urls import path

from imaging import api, views, views_upload

urlpatterns = [
    path("imaging/cases/", views.case_list, name="imaging_case_list"),
    path("imaging/cases/duplicates/", views.case_duplicates, name="imaging_case_duplicates"),
    path("imaging/cases/duplicates/merge/", views.case_duplicates_merge, name="imaging_case_duplicates_merge"),
    path("imaging/cases/duplicates/dismiss/", views.case_duplicates_dismiss, name="imaging_case_duplicates_dismiss"),
    path("imaging/cases/<int:pk>/", views.case_detail, name="imaging_case_detail"),
    path("imaging/cases/<int:pk>/correct/", views.case_correct, name="imaging_case_correct"),
    path("imaging/series/<int:pk>/", views.series_detail, name="imaging_series_detail"),
    path("imaging/series/<int:pk>/override/", views.series_override, name="imaging_series_override"),
    path("imaging/mapping/", views.mapping, name="imaging_mapping"),
    path("imaging/mapping/rules/", views.mapping_rules, name="imaging_mapping_rules"),
    path("imaging/mapping/remap/", views.mapping_remap, name="imaging_mapping_remap"),
    path("imaging/import/", views_upload.upload, name="imaging_upload"),
    path("imaging/imports/", views.import_list, name="imaging_import_list"),
    path("imaging/retrieve/", views.retrieve_new, name="imaging_retrieve"),
    path("imaging/retrieve/<int:pk>/discard/", views.retrieve_discard, name="imaging_retrieve_discard"),
    path("imaging/imports/<int:pk>/", views.import_detail, name="imaging_import_detail"),
    path("imaging/imports/<int:pk>/discard-upload/", views.import_upload_discard, name="imaging_import_upload_discard"),
    path("imaging/imports/held/<int:pk>/resolve/", views.import_review_resolve, name="imaging_import_review_resolve"),
    path("imaging/cohorts/", views.cohort_list, name="imaging_cohort_list"),
    path("imaging/cohorts/<int:pk>/build/", views.cohort_build, name="imaging_cohort_build"),
    path("api/series/<int:pk>/volume", api.series_volume, name="imaging_api_series_volume"),
    path("api/series/<int:pk>/meta", api.series_meta, name="imaging_api_series_meta"),
    path("api/series/<int:pk>/boxes/", api.series_boxes, name="imaging_api_series_boxes"),
    path("api/series/<int:pk>/boxes/copy/", api.series_boxes_copy, name="imaging_api_series_boxes_copy"),
    path("api/cases/", api.CaseListApi.as_view(), name="imaging_api_case_list"),
    path("api/cases/<int:pk>/", api.CaseDetailApi.as_view(), name="imaging_api_case_detail"),
]
