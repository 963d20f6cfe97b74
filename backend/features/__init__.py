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
from .train import TrainReport as TrainReport
from .train import train_features as train_features

__all__ = ["ClickConfig", "FeatureField", "SagaConfig", "SegmentResult", "TrainReport", "load_field", "train_features"]
