from django.urls import path

from training import api, views

urlpatterns = [
    path("training/", views.run_list, name="training_runs"),
    path("training/new/", views.run_start, name="training_start"),
    path("training/<int:pk>/", views.run_detail, name="training_run"),
    path("training/models/<int:pk>/", views.model_detail, name="training_model"),
    path("api/training/runs/<int:pk>/", api.TrainingRunApi.as_view(), name="api_training_run"),
    path("api/training/models/<int:pk>/", api.TrainedModelApi.as_view(), name="api_training_model"),
]
