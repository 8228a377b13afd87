from django.urls import path

from jobs import api, views

urlpatterns = [
    path("jobs/", views.job_list, name="job_list"),
    path("jobs/<int:pk>/", views.job_detail, name="job_detail"),
    path("jobs/worker-check/", views.worker_check_start, name="worker_check_start"),
    path("api/jobs/", api.JobListApi.as_view(), name="api_job_list"),
    path("api/jobs/<int:pk>/", api.JobDetailApi.as_view(), name="api_job_detail"),
    path("api/jobs/<int:pk>/cancel/", api.job_cancel_api, name="api_job_cancel"),
    path("api/jobs/<int:pk>/resume/", api.job_resume_api, name="api_job_resume"),
]
