"""What every app's API shares for its output: the error bodies and two building blocks.

Why output serializers at all: every API response is produced by a serializer (or its hand-built data passes
through one), and each view names it in ``extend_schema(responses=...)``; so the OpenAPI schema
(drf-spectacular) states every response type, and the data cannot drift from what the schema says. Each app's
output serializers live in its ``serializers.py``; tests/core/test_core_openapi_schemathesis.py checks real
responses against the schema (docs/architecture.md).

- ``errors(400, 403, ...)``: the error responses of a view for ``responses={...}``: DRF's ``{"detail": "..."}``,
  and for 400 the field errors (``{"field": ["message", ...]}``, or ``{"detail": "..."}``); always with 429, as
  every API view is rate-limited (``REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]``, core/throttling.py).
- ``JSONValue(schema)``: a read-only field that sends its value as it is (no float(), no str()) and states its
  JSON schema: for JSON columns and numbers that may be whole (``1``, not ``1.0``, as before).
- ``DictSerializer``: for data a selector or service builds as a dict: keys absent from the dict stay absent
  (DRF would send ``null`` for an absent nullable field).
"""

from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from rest_framework import serializers


class DetailSerializer(serializers.Serializer):
    """DRF's error body: 403 (not signed in, wrong role, a guard of the service), 404, 409, 429 (too many
    requests: Retry-After says when to try again)."""

    detail = serializers.CharField()


class FieldErrorsSerializer(serializers.Serializer):
    """A 400: each field (or parameter) with its messages, or ``detail`` for an error of the whole request."""


class FieldErrorsSchema(OpenApiSerializerExtension):
    target_class = FieldErrorsSerializer

    def map_serializer(self, auto_schema, direction):
        message = {"type": "string"}
        return {"type": "object", "description": FieldErrorsSerializer.__doc__.strip(),
                "additionalProperties": {"oneOf": [message, {"type": "array", "items": message}]}}


ERROR_BODIES = {400: FieldErrorsSerializer, 403: DetailSerializer, 404: DetailSerializer,
                409: DetailSerializer, 429: DetailSerializer}


def errors(*codes: int) -> dict:
    """``responses={200: X, **errors(403, 404)}``: the error bodies of these status codes, and of 429."""
    return {code: ERROR_BODIES[code] for code in (*codes, 429)}


class JSONValue(serializers.JSONField):
    """A read-only value sent as it is, with its JSON schema (an OpenAPI 3.0 schema object) in the API schema."""

    def __init__(self, schema: dict, **kwargs):
        self.schema = schema
        super().__init__(read_only=True, **kwargs)


class JSONValueSchema(OpenApiSerializerFieldExtension):
    target_class = JSONValue

    def map_serializer_field(self, auto_schema, direction):
        schema = dict(self.target.schema)
        if self.target.allow_null:
            schema["nullable"] = True
        if self.target.help_text:
            schema["description"] = str(self.target.help_text)
        return schema


NUMBER = {"type": "number"}
NUMBERS = {"type": "array", "items": NUMBER}
ANY = {}                                                  # any JSON value (a JSON column, a free-form document)
OBJECT = {"type": "object", "additionalProperties": {}}


class DictSerializer(serializers.Serializer):
    """Serializes a dict built elsewhere (a payload, a service's summary): a key absent from the dict is absent
    from the output too (DRF would send an absent nullable field as ``null``)."""

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if isinstance(instance, Mapping):
            return {name: value for name, value in data.items() if self.fields[name].source in instance}
        return data
