"""Reader-study pages and API. Reader pages under /studies/ and /reading/, coordinator pages under
/coordination/studies/; the API under /api/reading/ (readers) and /api/studies/ (coordinators).

The descriptor task keeps its own URLs (/descriptors/..., .../descriptors/), served by the exams' views:
``DESCRIPTOR_TASK`` tells them which task the URL names, and a case of another task answers 404 there.
"""

from django.urls import path

from reader_study import api, views
from reader_study.models import DESCRIPTORS

app_name = "reader_study"
DESCRIPTOR_TASK = {"tasks": (DESCRIPTORS,)}
DESCRIPTOR_WORKLIST = {**DESCRIPTOR_TASK, "exam": DESCRIPTORS}

urlpatterns = [
    # reader pages
    path("studies/", views.my_studies, name="my_studies"),
    path("studies/<int:pk>/", views.study_home, name="study_home"),
    path("studies/<int:pk>/exam/<int:exam>/", views.worklist, name="worklist"),
    path("studies/<int:pk>/exam/<int:exam>/resume/", views.resume, name="resume"),
    path("studies/<int:pk>/exam/<int:exam>/finish/", views.exam_finish, name="exam_finish"),
    path("reading/<int:pk>/", views.reading, name="reading"),
    path("studies/<int:pk>/descriptors/", views.worklist, DESCRIPTOR_WORKLIST, name="descriptor_worklist"),
    path("descriptors/<int:pk>/", views.reading, DESCRIPTOR_TASK, name="descriptor_scoring"),
    # coordinator pages
    path("coordination/studies/", views.study_list, name="study_list"),
    path("coordination/studies/new/", views.study_create, name="study_create"),
    path("coordination/studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("coordination/studies/<int:pk>/open/", views.study_open, name="study_open"),
    path("coordination/studies/<int:pk>/close/", views.study_close, name="study_close"),
    path("coordination/studies/<int:pk>/enrol/", views.study_enrol, name="study_enrol"),
    path("coordination/studies/<int:pk>/washout-override/", views.washout_override, name="washout_override"),
    path("coordination/studies/<int:pk>/descriptor-consensus/", views.descriptor_consensus,
         name="descriptor_consensus"),
    path("coordination/studies/<int:pk>/adopt-truth/", views.study_truth_adopt, name="study_truth_adopt"),
    path("coordination/studies/<int:pk>/hanging-protocol/", views.study_hanging, name="study_hanging"),
    # reader API
    path("api/reading/studies/", api.reader_studies_api, name="api_reader_studies"),
    path("api/reading/studies/<int:pk>/", api.reader_study_api, name="api_reader_study"),
    path("api/reading/studies/<int:pk>/exams/<int:exam>/", api.worklist_api, name="api_worklist"),
    path("api/reading/studies/<int:pk>/exams/<int:exam>/finish/", api.exam_finish_api,
         name="api_exam_finish"),
    path("api/reading/studies/<int:pk>/descriptors/", api.worklist_api, DESCRIPTOR_WORKLIST,
         name="api_descriptor_worklist"),
    path("api/reading/<int:pk>/", api.reading_case_api, name="api_reading_case"),
    path("api/reading/<int:pk>/series/<str:handle>/volume", api.series_volume_api, name="api_series_volume"),
    path("api/reading/<int:pk>/series/<str:handle>/heat-maps", api.series_heat_map_api, name="api_series_heat_map"),
    path("api/reading/<int:pk>/read/", api.answer_submit_api, name="api_read_submit"),
    path("api/reading/<int:pk>/time/", api.active_time_api, name="api_active_time"),
    path("api/reading/descriptors/<int:pk>/", api.reading_case_api, DESCRIPTOR_TASK, name="api_descriptor_case"),
    path("api/reading/descriptors/<int:pk>/score/", api.answer_submit_api, DESCRIPTOR_TASK,
         name="api_descriptor_score"),
    path("api/reading/descriptors/<int:pk>/time/", api.active_time_api, DESCRIPTOR_TASK,
         name="api_descriptor_time"),
    # coordinator API
    path("api/studies/", api.study_list_api, name="api_study_list"),
    path("api/studies/<int:pk>/progress/", api.study_progress_api, name="api_study_progress"),
    path("api/studies/<int:pk>/open/", api.study_open_api, name="api_study_open"),
    path("api/studies/<int:pk>/close/", api.study_close_api, name="api_study_close"),
    path("api/studies/<int:pk>/enrol/", api.study_enrol_api, name="api_study_enrol"),
    path("api/studies/<int:pk>/washout-override/", api.washout_override_api, name="api_washout_override"),
    path("api/studies/<int:pk>/hanging-protocol/", api.study_hanging_api, name="api_study_hanging"),
    path("api/studies/<int:pk>/descriptor-consensus/", api.descriptor_consensus_api,
         name="api_descriptor_consensus"),
]
