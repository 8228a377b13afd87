"""The API docs page (Swagger UI, drf-spectacular's self-hosted sidecar assets) under the site's CSP.

drf-spectacular's default Swagger view puts its start-up script and a few style rules inline, which
``script-src 'self'; style-src 'self'`` refuse. Rather than relax the policy for this page (a nonce or hash),
it uses the split view, which serves the start-up script as a same-origin file (``/api/docs/?script``), and
``templates/api_docs.html``, which moves the style rules to ``static/css/api_docs.css``. The one addition to the
policy is ``img-src data:``: Swagger UI's stylesheet draws its icons as ``data:`` SVG images.

Anonymous visitors are sent to the login page (the view itself also checks
``SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]``). The start-up script holds the CSRF token; another site cannot
read it through a ``<script>`` tag, since the session cookie (SameSite=Lax) is not sent with such a request and
the login redirect answers instead.
"""

from csp.decorators import csp_update
from django.contrib.auth.decorators import login_required
from drf_spectacular.views import SpectacularSwaggerSplitView


class ApiDocsView(SpectacularSwaggerSplitView):
    template_name = "api_docs.html"
    url_name = "api_schema"


api_docs = login_required(csp_update({"img-src": ["data:"]})(ApiDocsView.as_view()))
