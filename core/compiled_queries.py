"""Querysets whose SQL is built once per process and run again with new values: the read path's hot queries.

Why our own: Django builds a queryset's filters and compiles its SQL anew on every call, and on the read path
(a reader's page, case API, ping and answer) that was the largest single cost: a sampling profile of gunicorn
serving one reader (py-spy, 2026-12-01) put building and compiling the four queries of the case API at about
37 % of the view's time, more than PostgreSQL's own work (19 %). No maintained library caches compiled ORM
queries (result caches such as django-cachalot answer another question and would serve stale permissions).

How: ``CompiledQuery(build)``, where ``build(**values)`` returns the queryset. The first call per *shape*
(which arguments are given, and the length of each tuple) builds it with marker integers in place of the
values, compiles it with Django's own compiler and remembers the SQL, where each marker landed among its
parameters, and the compiler's description of the columns. Later calls put the values in those places and
hand the SQL to Django's compiler and iterables, so rows still become model instances (with their
``select_related`` objects) or value dicts exactly as the ORM makes them: only the building is skipped.

Rules for ``build``: every value that changes between calls must be an argument (integers, or tuples of
integers); everything else is fixed in the SQL. Each shape is compiled twice with two sets of markers; where
a value did not reach the parameters (Django folded it, or wrote it into the SQL) the two differ and the
query refuses to run: the caller sees the error in its first test, never a wrong answer.
``tests/core/test_core_compiled_queries.py`` holds the SQL and rows equal to the ORM's, and the read path's
tests run through it.
"""

from __future__ import annotations

import copy
import functools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

# Markers: small positive integers, valid for every integer column (Django turns a value outside the column's
# range into an empty filter); each query is compiled with two sets, so that a constant equal to a marker,
# or a value written into the SQL, shows as a difference between the two and is refused.
_MARKS = (30_011, 31_517)
_COMPILER_STATE = ("select", "klass_info", "annotation_col_map", "col_count", "has_extra_select")


@dataclass(frozen=True)
class _Template:
    queryset: QuerySet
    alias: str
    sql: str
    params: tuple
    slots: tuple[tuple[int, str, int | None], ...]    # (parameter index, argument, index in its tuple)
    compiler_state: dict
    converters: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)   # per connection


class CompiledQuery:
    """A queryset built by ``build(**values)``, compiled once per argument shape (and database vendor)."""

    def __init__(self, build: Callable[..., QuerySet]):
        self._build = build
        self._templates: dict[tuple, _Template] = {}
        self._lock = threading.Lock()

    def __call__(self, **values) -> list:
        """The rows (model instances or dicts, as ``build``'s queryset gives them) for these values."""
        return list(_bound(self._template(values), values))

    def sql(self, **values) -> tuple[str, tuple]:
        """The SQL and parameters a call with ``values`` runs (for tests: they equal the ORM's own)."""
        template = self._template(values)
        return template.sql, _params(template, values)

    def _template(self, values: dict) -> _Template:
        """The compiled template for the shape of ``values``, compiled on its first use."""
        shape = tuple(sorted((name, len(v) if isinstance(v, tuple) else None) for name, v in values.items()))
        key = (connections["default"].vendor, shape)
        template = self._templates.get(key)
        if template is None:
            with self._lock:
                template = self._templates.get(key) or self._compile(shape)
                self._templates[key] = template
        return template

    def _compile(self, shape) -> _Template:
        first, second = (self._compile_with(shape, base) for base in _MARKS)
        if first[1:] != second[1:]:
            raise ValueError(f"{self._build.__qualname__}: each of its values must reach the SQL as a parameter "
                             "(the SQL changed with the values)")
        return first[0]

    def _compile_with(self, shape, base: int) -> tuple[_Template, str, tuple]:
        markers, where = _markers(shape, base)
        queryset = self._build(**markers)
        alias = queryset.db
        compiler = queryset.query.get_compiler(using=alias)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            raise ValueError(f"{self._build.__qualname__}: compiles to no SQL (an empty filter): "
                             "each of its values must reach the SQL as a parameter") from None
        slots = tuple((i, *where[p]) for i, p in enumerate(params) if type(p) is int and p in where)
        if {(name, at) for _, name, at in slots} != set(where.values()):
            raise ValueError(f"{self._build.__qualname__}: each of its values must reach the SQL as a parameter "
                             f"(markers {sorted(where)}, parameters {params})")
        state = {name: getattr(compiler, name) for name in _COMPILER_STATE}
        template = _Template(queryset=queryset, alias=alias, sql=sql, params=tuple(params), slots=slots,
                             compiler_state=state)
        return template, sql, slots


def _markers(shape, base: int) -> tuple[dict, dict]:
    """Marker values for a call of ``shape``, and the map marker → (argument, index in its tuple or None)."""
    values, where, n = {}, {}, 0
    for name, length in shape:
        if length is None:
            values[name], where[base + n] = base + n, (name, None)
            n += 1
            continue
        marks = tuple(base + n + i for i in range(length))
        n += length
        values[name] = marks
        where.update({mark: (name, i) for i, mark in enumerate(marks)})
    return values, where


def _params(template: _Template, values: dict) -> tuple:
    params = list(template.params)
    for index, name, position in template.slots:
        value = values[name]
        params[index] = value if position is None else value[position]
    return tuple(params)


def _converters(template: _Template, compiler, expressions) -> dict:
    """The columns' converters (JSON decoding, the backend's own), worked out once per database connection:
    the same columns every time, and a converter may be bound to its connection."""
    found = template.converters.get(compiler.connection)
    if found is None:
        found = template.converters[compiler.connection] = type(compiler).get_converters(compiler, expressions)
    return found


def _bound(template: _Template, values: dict) -> QuerySet:
    """A queryset like the template's whose compiler answers the stored SQL with ``values`` in place: Django's
    iterables then run it and build the rows as usual. (QuerySet._clone would copy the query's whole tree;
    ``copy.copy`` of a QuerySet would run it: hence built by hand, as ``_clone`` does.)"""
    sql, params = template.sql, _params(template, values)
    query = copy.copy(template.queryset.query)

    def get_compiler(using=None, connection=None, elide_empty=True):
        compiler = type(query).get_compiler(query, using=using, connection=connection, elide_empty=elide_empty)
        compiler.__dict__.update(template.compiler_state)
        compiler.as_sql = lambda *args, **kwargs: (sql, params)
        compiler.get_converters = functools.partial(_converters, template, compiler)
        return compiler

    query.get_compiler = get_compiler
    source = template.queryset
    bound = source.__class__(model=source.model, query=query, using=template.alias, hints=source._hints)
    bound._prefetch_related_lookups = source._prefetch_related_lookups[:]
    bound._known_related_objects = source._known_related_objects
    bound._iterable_class = source._iterable_class
    bound._fields = source._fields
    return bound
