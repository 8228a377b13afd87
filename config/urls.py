from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config.api_docs import api_docs
from core.views import favicon

urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("", include("accounts.urls")),
    path("", include("jobs.urls")),
    path("admin/", admin.site.urls),
    # Both need a login (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]); the docs page runs under the CSP (api_docs.py).
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", api_docs, name="api_docs"),
]

# Each domain app contributes its pages and API here once it has them.
for app in ("imaging", "training", "inference", "reader_study", "analysis"):
    try:
        urlpatterns.append(path("", include(f"{app}.urls")))
    except ModuleNotFoundError as exc:
        if exc.name != f"{app}.urls":
            raise

# A lost database connection answers 503 + Retry-After (retryable); anything else a plain 500 page. 403 and 404 are
# the site's pages, with its navigation (core/views.py). Under /api/ all of them answer JSON.
handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "config.errors.server_error"
