"""Response headers that neither Django 5.2 nor django-csp set (docs/security.md, *Content-Security-Policy and
headers*).

Permissions-Policy: the platform uses no browser feature beyond the page itself, except full screen for the
image viewer (static/js/viewer.js), so every powerful feature is switched off for the page and any frame.
Only features that Chromium knows are named: an unknown one is a console error on every page.
"""

from __future__ import annotations

PERMISSIONS_POLICY = ", ".join([
    "accelerometer=()", "autoplay=()", "camera=()", "display-capture=()", "encrypted-media=()",
    "fullscreen=(self)", "geolocation=()", "gyroscope=()", "hid=()", "idle-detection=()", "magnetometer=()",
    "microphone=()", "midi=()", "payment=()", "picture-in-picture=()", "publickey-credentials-get=()",
    "screen-wake-lock=()", "serial=()", "usb=()", "xr-spatial-tracking=()",
])


class PermissionsPolicyMiddleware:
    """Adds the Permissions-Policy header to every response that has none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
