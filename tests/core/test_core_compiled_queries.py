"""core.compiled_queries: SQL built once per shape, run again with new values, rows as the ORM makes them."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import F

from core.compiled_queries import CompiledQuery

pytestmark = pytest.mark.django_db
User = get_user_model()


def _users(n):
    group = Group.objects.get_or_create(name="compiled-test")[0]
    users = [User.objects.create(username=f"compiled-{i}", first_name=f"F{i}") for i in range(n)]
    for user in users[::2]:
        user.groups.add(group)
    return users, group


def test_rows_equal_the_orms_for_every_value_and_the_sql_is_built_once(django_assert_num_queries):
    users, group = _users(5)
    built = []

    def build(pk, ids):
        built.append(1)
        return User.objects.filter(pk__in=ids).exclude(pk=pk).order_by("pk")

    query = CompiledQuery(build)
    for user in users:
        ids = tuple(u.pk for u in users[:3])
        with django_assert_num_queries(1):
            rows = query(pk=user.pk, ids=ids)
        assert rows == list(User.objects.filter(pk__in=ids).exclude(pk=user.pk).order_by("pk"))
    assert len(built) == 2                        # one shape: built once with each of the two sets of markers
    query(pk=users[0].pk, ids=(users[1].pk,))                # another tuple length: another compilation
    assert len(built) == 4
    sql, params = query.sql(pk=users[1].pk, ids=(users[2].pk, users[3].pk))
    orm = build(users[1].pk, (users[2].pk, users[3].pk)).query.sql_with_params()
    assert (sql, tuple(params)) == (orm[0], tuple(orm[1]))


def test_values_annotations_and_select_related_come_back_as_the_orm_gives_them():
    users, group = _users(4)
    values = CompiledQuery(lambda group: User.objects.filter(groups=group).order_by("pk")
                           .values("pk", "username", initial=F("first_name")))
    assert values(group=group.pk) == list(User.objects.filter(groups=group).order_by("pk")
                                          .values("pk", "username", initial=F("first_name")))
    memberships = CompiledQuery(lambda user: User.groups.through.objects.select_related("user", "group")
                                .filter(user_id=user))
    [row] = memberships(user=users[0].pk)
    assert (row.user.username, row.group.name) == (users[0].username, "compiled-test")
    assert memberships(user=users[1].pk) == []


def test_a_value_folded_into_the_sql_is_refused():
    written = CompiledQuery(lambda pk: User.objects.filter(pk__gt=pk).extra(where=[f"id <> {pk}"]))  # noqa: S610
    with pytest.raises(ValueError, match="the SQL changed with the values"):
        written(pk=1)
    with pytest.raises(ValueError, match="must reach the SQL as a parameter"):
        CompiledQuery(lambda pk: User.objects.filter(pk__in=[]).exclude(pk=pk))(pk=1)   # never a parameter
    ignored = CompiledQuery(lambda pk: User.objects.all())
    with pytest.raises(ValueError, match="must reach the SQL as a parameter"):
        ignored(pk=1)


def test_converters_worked_out_once_still_convert_every_call():
    users, _ = _users(3)
    joined = CompiledQuery(lambda pk: User.objects.filter(pk=pk).values("date_joined", "is_active"))
    for user in users * 2:                                     # the second round uses the kept converters
        [row] = joined(pk=user.pk)
        assert row == User.objects.filter(pk=user.pk).values("date_joined", "is_active").get()
        assert row["date_joined"].tzinfo is not None and row["is_active"] is True
