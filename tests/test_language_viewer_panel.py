"""The "Find by text" panel, driven through a stand-in for viser's GUI (no browser, no server)."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest

from backend.core.errors import SplatsegError
from backend.language import ClusterEmbeddings, LevelEmbeddings, TextIndex
from tests.helpers.language_support import ColourEncoder
from viewer.text_panel import TextPanelHooks, add_text_panel


class _Widget:
    def __init__(self, label: str, value=None, **props) -> None:
        self.label, self.value, self.visible, self.disabled, self.content = label, value, True, False, ""
        self.__dict__.update(props)
        self._callbacks = []

    def on_update(self, fn):
        self._callbacks.append(fn)
        return fn

    on_click = on_update

    def user_sets(self, value=None) -> None:  # what a person does in the browser
        if value is not None:
            self.value = value
        for fn in self._callbacks:
            fn(SimpleNamespace(client=object()))


class _Gui:
    def add_folder(self, label, **_):
        return contextlib.nullcontext()

    def add_text(self, label, initial_value, **kw):
        return _Widget(label, initial_value)

    def add_button(self, label, visible=True, **kw):
        return _Widget(label, visible=visible)

    def add_dropdown(self, label, options, initial_value=None, **kw):
        return _Widget(label, initial_value, options=options)

    def add_checkbox(self, label, initial_value, **kw):
        return _Widget(label, initial_value)

    def add_slider(self, label, lo, hi, step, initial_value, disabled=False, **kw):
        return _Widget(label, initial_value, disabled=disabled)

    def add_markdown(self, content, **kw):
        w = _Widget("")
        w.content = content
        return w


COLOURS = {1: "0.9,0.1,0.1", 2: "0.1,0.1,0.9", 3: "0.9,0.15,0.1"}  # two reds and a blue object


@pytest.fixture
def index() -> TextIndex:
    enc = ColourEncoder()
    labels = {"coarse": np.repeat([1, 2, 3, -1], [5, 3, 2, 2])}
    ids = np.array([1, 2, 3])
    emb = enc.encode_text([COLOURS[i] for i in ids])
    level = LevelEmbeddings(ids, np.array([5, 3, 2]), emb, np.zeros((3, 1), dtype=np.int64))
    return TextIndex(enc, ClusterEmbeddings({"coarse": level}, dict(enc.identity)), labels)


def _panel(index, **overrides):
    calls = {"select": [], "heat": [], "notify": []}
    hooks = TextPanelHooks(
        index=overrides.get("provider", lambda: index),
        select=lambda mask, op, key: calls["select"].append((mask.copy(), op, key)),
        show_heat=lambda colours: calls["heat"].append(colours),
        notify=lambda *a: calls["notify"].append(a),
        prepare=overrides.get("prepare"),
    )
    return add_text_panel(_Gui(), hooks), calls


def test_find_selects_the_best_match_and_lists_the_top(index) -> None:
    panel, calls = _panel(index)
    panel.text.value = "0.9,0.1,0.1"
    panel.find.user_sets()
    mask, op, _ = calls["select"][-1]
    assert op == "replace" and mask.tolist() == [True] * 5 + [False] * 7
    visible = [b for b in panel.picks if b.visible]
    assert len(visible) == 3 and visible[0].label.startswith("✓ 1. object 1")
    assert "5" in panel.results.content

    panel.picks[2].user_sets()  # the third listed: the blue object
    mask, _, key = calls["select"][-1]
    assert mask.tolist() == [False] * 5 + [True] * 3 + [False] * 4 and key[0] == "text-pick"


def test_threshold_mode_add_and_heat_map(index) -> None:
    panel, calls = _panel(index)
    panel.text.value = "0.9,0.1,0.1"
    panel.mode.value = "Add"
    panel.all_above.user_sets(True)  # re-runs the query with the threshold on
    assert not panel.threshold.disabled
    mask, op, _ = calls["select"][-1]
    assert op == "add" and mask.tolist() == [True] * 5 + [False] * 3 + [True] * 2 + [False] * 2  # both reds
    panel.heat.user_sets(True)
    colours = calls["heat"][-1]
    assert colours.shape == (12, 3) and colours.dtype == np.uint8
    assert (colours[0] != colours[5]).any()  # red objects hot, blue one cold
    panel.heat.user_sets(False)
    assert calls["heat"][-1] is None


def test_missing_embeddings_offer_the_prepare_button(index) -> None:
    started = []

    def no_index():
        raise SplatsegError("this scene has no text embeddings yet; run `splatseg prepare-text SCENE` first")

    panel, calls = _panel(index, provider=no_index, prepare=lambda: started.append(True))
    panel.text.value = "a mug"
    panel.find.user_sets()
    assert panel.prepare_btn.visible and "prepare-text" in panel.results.content
    assert calls["select"] == [] and calls["notify"]
    panel.prepare_btn.user_sets()
    assert started == [True]


def test_values_set_from_code_do_not_search(index) -> None:
    panel, calls = _panel(index)
    panel.text.value = "0.1,0.1,0.9"
    for fn in panel.find._callbacks:
        fn(SimpleNamespace(client=None))
    assert calls["select"] == []
