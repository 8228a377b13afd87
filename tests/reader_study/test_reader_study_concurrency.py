"""Two tabs or a double click: simultaneous submits of the same case make one read (real threads, real
transactions; on PostgreSQL the assignment row is locked with SELECT ... FOR UPDATE)."""

import threading

import pytest
from django.db import connection
from django.test import Client

from core.constants import LEIOMYOMA, SARCOMA
from factories_reader_study import opened_ago
from reader_study import selectors, services
from reader_study.models import Read, ReadAudit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]


def _at_once(jobs):
    """Run the callables in threads released together; return their results or exceptions."""
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def run(i, job):
        try:
            barrier.wait()
            results[i] = job()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_simultaneous_identical_submits_make_one_read_and_one_audit_row(study_setup, reader):
    opened_ago(selectors.worklist(study_setup["study"], reader, 1))
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    results = _at_once([lambda: services.read_submit(reader=reader, assignment=a, call=SARCOMA, confidence=70,
                                                     active_seconds=5)] * 4)
    assert all(isinstance(r, Read) for r in results), results
    assert Read.objects.filter(assignment=a).count() == 1
    read = Read.objects.get(assignment=a)
    assert read.revision == 1 and ReadAudit.objects.filter(read=read).count() == 1
    assert read.active_seconds == 20                         # every tab's active time is kept


def test_two_tabs_with_different_answers_make_one_read_and_keep_both_in_the_audit(study_setup, reader):
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    tabs = [Client(), Client()]
    for tab in tabs:
        tab.force_login(reader)
    answers = ({"call": SARCOMA, "confidence": 80}, {"call": LEIOMYOMA, "confidence": 20})
    url = f"/api/reading/{a.pk}/read/"
    results = _at_once([lambda t=t, b=b: t.post(url, b, content_type="application/json")
                        for t, b in zip(tabs, answers, strict=True)])
    assert [r.status_code for r in results] == [200, 200]
    read = Read.objects.get(assignment=a)
    audit = list(ReadAudit.objects.filter(read=read).order_by("pk"))
    assert [x.action for x in audit] == ["created", "changed"] and read.revision == 2
    assert (read.call, read.confidence) == (audit[1].after["call"], audit[1].after["confidence"])
