"""The API's pagination: ``?limit`` and ``?offset`` bounded, nonsense answered with 400.

DRF's ``LimitOffsetPagination`` without ``max_limit`` passes any number to the database:
``?limit=9223372036854775808`` overflowed the SQL LIMIT and answered 500, and a limit that is not a number was
silently replaced by the default. Here a limit must be 1–``MAX_LIMIT`` and an offset 0–``MAX_OFFSET``; anything
else is a 400 that names the parameter and the range.
"""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10**9


def _bounded(request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: f"must be a whole number from {low} to {high}"}) from None
    if not low <= value <= high:
        raise ValidationError({name: f"must be from {low} to {high}"})
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT

    def get_limit(self, request) -> int:
        return _bounded(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request) -> int:
        return _bounded(request, self.offset_query_param, 0, 0, MAX_OFFSET)
