"""Issue 15, bug 6: the model card printed its configuration as a raw Python dict, counted epochs from 0 in one
place and from 1 in another, and showed two different held-out AUCs for the same epoch without saying why. The
card is now labelled tables, counts repeats, folds and epochs from 1, and explains the two AUCs. SYNTHETIC values."""

import re

import pytest

from factories_training import CARD_FINAL, CARD_HISTORY, make_trained_model_with_card
from training.card_page import auc_note, card_page, config_sections
from training.models import TrainedModel

pytestmark = pytest.mark.django_db

HISTORY, FINAL = CARD_HISTORY, CARD_FINAL
_trained_model = make_trained_model_with_card


@pytest.fixture
def card_html(client, coordinator):
    def _get(model: TrainedModel) -> str:
        client.force_login(coordinator)
        response = client.get(f"/training/models/{model.pk}/")
        assert response.status_code == 200
        return response.content.decode()
    return _get


def test_the_configuration_is_labelled_rows_with_units_not_a_printed_dict(card_html):
    page = card_html(_trained_model())
    assert "{&#x27;" not in page and "{'" not in page and "&#x27;epochs&#x27;:" not in page
    assert "<th>Samples per epoch</th><td>16</td>" in page
    assert "<th>Rotation (±)</th><td>15°</td>" in page and "<th>Zoom (±)</th><td>10.0 %</td>" in page
    assert "<th>Input size</th><td>32 × 32 pixels</td>" in page
    assert "<th>BatchNorm momentum</th><td>MobileNetV2&#x27;s default (0.999)</td>" in page


def test_repeats_folds_and_epochs_are_counted_from_one_everywhere(card_html):
    page = card_html(_trained_model(repeat=0, fold=2))
    assert "<h1>Model card: repeat 1, fold 3</h1>" in page
    assert "<th>Repeat, fold</th><td>repeat 1, fold 3</td>" in page
    curve = page[page.index('id="card-curves"'):page.index('id="card-config"')]
    assert re.findall(r"<tr><td>(\d+)</td>", curve) == ["1", "2"]
    assert "the model after epoch 2" in page and "epoch 0" not in page


def test_the_two_held_out_aucs_are_both_shown_and_explained(card_html):
    page = card_html(_trained_model(eval_max_slices=64))
    assert "<td>0.802</td>" in page  # the curve's last epoch, on a sample of the held-out slices
    assert "<th>AUC (slice level)</th><td>0.787</td>" in page  # the final figure, on all of them
    assert 'id="auc-note"' in page
    assert "a fixed, seeded sample of 64 of the 480 held-out slices" in page
    assert "differ for that reason only" in page


def test_without_a_sample_the_note_says_both_aucs_score_every_held_out_slice():
    note = auc_note(metrics=FINAL, config={"eval_max_slices": None}, last_epoch=2)
    assert "both score all 480 held-out slices" in note and "agree" in note
    assert auc_note(metrics=FINAL, config={"eval_max_slices": 1000}, last_epoch=2) == note  # a cap above the count


def test_an_unfinished_model_says_so_instead_of_an_empty_table(card_html):
    model = _trained_model()
    TrainedModel.objects.filter(pk=model.pk).update(status="training", metrics={}, card={}, history=HISTORY[:1],
                                                    epochs_done=1)
    page = card_html(model)
    assert "Not finished: the final figures come when all epochs are trained." in page
    assert "<th>Epochs</th><td>2</td>" in page  # the run's configuration while the card does not exist yet
    assert 'id="auc-note"' not in page


def test_a_setting_the_page_does_not_know_is_still_shown_by_its_name():
    sections = dict(config_sections({"epochs": 3, "mixup_alpha": 0.2}))
    assert sections["Training"] == [("Epochs", "3")]
    assert sections["Other settings"] == [("mixup alpha", "0.2")]


def test_card_page_counts_epochs_by_position_when_a_stored_history_numbers_them_from_zero():
    zero_based = [{**logs, "epoch": logs["epoch"] - 1} for logs in HISTORY]
    page = card_page(card={}, history=zero_based, metrics=FINAL, config={})
    assert [row.epoch for row in page.curves] == [1, 2]
