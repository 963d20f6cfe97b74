"""Feature methods are classes picked by name (backend/features/method.py): the CLI string maps to one class, an
unknown name is refused with the choices, and a new subclass is a new method everywhere names are listed."""

from __future__ import annotations

import pytest

from backend.core.errors import SplatsegError
from backend.features import method as method_module
from backend.features.click import ClickMethod
from backend.features.method import FeatureMethod, method_class, method_names
from backend.features.saga import SagaMethod
from backend.features.store import features_name


def test_names_map_to_classes():
    assert method_class("click") is ClickMethod and method_class("saga") is SagaMethod
    assert ClickMethod.levels == ("coarse", "fine") and not ClickMethod.uses_scale
    assert SagaMethod.levels == () and SagaMethod.uses_scale
    with pytest.raises(SplatsegError, match="choose one of click, saga"):
        method_class("sam")


def test_a_new_subclass_is_a_new_method():
    try:

        class Third(FeatureMethod):
            name = "third"

        assert "third" in method_names() and method_class("third") is Third
        assert features_name("third") == "features/third.safetensors"
    finally:
        method_module._REGISTRY.pop("third", None)
    assert "third" not in method_names()
