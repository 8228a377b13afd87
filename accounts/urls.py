from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reader/", views.reader_home, name="reader_home"),
    path("coordinator/", views.coordinator_home, name="coordinator_home"),
    path("console/", views.admin_home, name="admin_home"),
    path("accounts/locked/", views.locked_accounts, name="locked_accounts"),
    path("accounts/<int:pk>/unlock/", views.user_unlock, name="user_unlock"),
]
