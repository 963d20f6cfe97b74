"""Per-Gaussian affinity features: Click-Gaussian (two levels + global clusters) and SAGA (scale-gated).

    from backend.features import load_field
    field = load_field("scene/")                       # the most recently trained method
    result = field.segment(camera, [(120.5, 88.5)])     # pixel positions; centres are integer + 0.5
    result.mask, result.scores, result.milliseconds

Training (`train_features`, `splatseg train`) keeps the geometry frozen and works from precomputed per-view
contributions (contrib_cache.py); the trained tensors live in the workspace (store.py).
"""

from .click import ClickConfig as ClickConfig
from .field import FeatureField as FeatureField
from .field import SegmentResult as SegmentResult
from .field import load_field as load_field
from .saga import SagaConfig as SagaConfig


def __getattr__(name: str):
    """`train_features` and `TrainReport` on first use: training pulls in the mask pipeline (image readers,
    segmenters), which `splatseg segment` and the viewer's click never need at start-up."""
    if name in ("TrainReport", "train_features"):
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ClickConfig", "FeatureField", "SagaConfig", "SegmentResult", "TrainReport", "load_field", "train_features"]
