"""`splatseg view` loads trained features after the server is up, so the first frame does not wait for them."""

from __future__ import annotations

import threading

import pytest

from backend.core.errors import SplatsegError
from tests.helpers.feature_scenes import TinyScene, trained_tiny_scene
from viewer.app import ViewerApp, load_field_for, port_is_free
from viewer.hints import FEATURES_LOADED, FIELD_LOADING
from viewer.session import NoFeatures


def _free_port(start: int) -> int:
    return next(p for p in range(start, start + 200) if port_is_free("127.0.0.1", p))


@pytest.fixture
def trained_scene(tmp_path_factory: pytest.TempPathFactory) -> TinyScene:
    return trained_tiny_scene(tmp_path_factory)


def test_features_arrive_after_the_server_is_up(trained_scene: TinyScene, capsys) -> None:
    release = threading.Event()

    def slow_loader(*args):  # the real loader, held back until the test has looked at the app
        assert release.wait(60)
        return load_field_for(*args)

    app = ViewerApp(
        trained_scene.folder,
        port=_free_port(18800),
        verbose=True,
        field_loader=slow_loader,
        background_field=True,
    )
    try:
        assert app.url.startswith("http://127.0.0.1:")  # serving while the features load
        assert app.session.field is None and app.session.field_problem == FIELD_LOADING
        assert app.session.jobs.running and app.session.jobs.name == "Loading features"
        with pytest.raises(NoFeatures) as e:
            app.session._require_field()
        assert str(e.value) == FIELD_LOADING  # not "prepare, then train": there is nothing to do but wait
        with pytest.raises(SplatsegError, match="already running"):
            app.start_prepare()  # one job at a time: a retrain cannot race the initial load
        release.set()
        assert app.session.jobs.wait(120)
        assert app.session.field is not None and app.session.field_problem is None
        assert app.session.field.num_gaussians == len(trained_scene.scene)
        assert f"splatseg view: {FEATURES_LOADED}" in capsys.readouterr().out  # what scripts wait for
    finally:
        release.set()
        app.stop()


def test_without_trained_features_nothing_loads_in_the_background(tmp_path_factory) -> None:
    from tests.helpers.feature_scenes import prepared_tiny_scene

    prepared = prepared_tiny_scene(tmp_path_factory)
    app = ViewerApp(prepared.folder, port=_free_port(18850), verbose=False, background_field=True)
    try:
        assert not app.session.jobs.running
        assert app.session.field is None and app.session.field_problem != FIELD_LOADING
        assert "train" in app.session.field_problem
    finally:
        app.stop()
