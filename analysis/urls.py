"""Study statistics pages, figures, exports and the statistics API (coordinators and admins only)."""

from django.urls import path

from analysis import api, views, views_planning

urlpatterns = [
    path("analysis/", views.study_list, name="analysis_study_list"),
    path("analysis/planning/", views_planning.planning_page, name="analysis_planning"),
    path("analysis/studies/<int:pk>/", views.study_statistics, name="analysis_study"),
    path("analysis/studies/<int:pk>/figures/<slug:name>.<str:fmt>", views.figure, name="analysis_figure"),
    path("analysis/studies/<int:pk>/exports/<str:filename>", views.export, name="analysis_export"),
    path("api/analysis/studies/<int:pk>/", api.study_statistics_api, name="analysis_api_study"),
]
