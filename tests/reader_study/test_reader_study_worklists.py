"""Seeded, stored worklists (METHOD §11): each reader and exam gets an order and display codes of its own."""

import pytest

from reader_study.worklists import draw_worklist, worklist_seed

CASES = list(range(101, 141))


def test_the_same_study_reader_and_exam_always_give_the_same_worklist():
    seed = worklist_seed(12345, 7, 1)
    assert seed == worklist_seed(12345, 7, 1)
    assert draw_worklist(CASES, seed, 1) == draw_worklist(list(reversed(CASES)), seed, 1)


def test_readers_and_exams_get_different_orders_and_codes():
    orders = {}
    for reader in (1, 2):
        for exam in (1, 2):
            items = draw_worklist(CASES, worklist_seed(12345, reader, exam), exam)
            orders[reader, exam] = [i.case_id for i in items]
    assert len({tuple(o) for o in orders.values()}) == 4
    assert all(sorted(o) == CASES for o in orders.values())


def test_positions_run_from_zero_and_codes_are_unique_and_exam_specific():
    exam1 = draw_worklist(CASES, worklist_seed(1, 1, 1), 1)
    exam2 = draw_worklist(CASES, worklist_seed(1, 1, 2), 2)
    assert [i.position for i in exam1] == list(range(len(CASES)))
    assert len({i.display_code for i in exam1}) == len(CASES)
    assert all(i.display_code.startswith("A-") for i in exam1)
    assert all(i.display_code.startswith("B-") for i in exam2)
    code_of = {i.case_id: i.display_code[2:] for i in exam2}
    assert sum(code_of[i.case_id] == i.display_code[2:] for i in exam1) < 3   # codes do not link the exams


def test_codes_are_not_positions():
    items = draw_worklist(CASES, worklist_seed(3, 4, 1), 1)
    numbers = [int(i.display_code[2:]) for i in items]
    assert numbers != sorted(numbers)


def test_large_worklists_get_longer_codes():
    items = draw_worklist(list(range(1, 301)), worklist_seed(1, 2, 1), 1)
    assert all(len(i.display_code) == len("A-1234") for i in items)
    assert len({i.display_code for i in items}) == 300


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="exam"):
        draw_worklist(CASES, 1, 4)
    with pytest.raises(ValueError, match="only once"):
        draw_worklist([1, 1, 2], 1, 1)
    with pytest.raises(ValueError, match="reader_id"):
        worklist_seed(1, -1, 1)


def test_empty_worklist_is_empty():
    assert draw_worklist([], worklist_seed(1, 1, 3), 3) == []
