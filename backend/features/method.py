"""`FeatureMethod`: what differs between affinity-feature methods, one subclass per method (as gsplat has one
`Strategy` subclass per densification strategy).

A subclass says how its features are trained (`train`: contributions cache → tensors to save), how a trained field
is read (granularity by named `levels` or by a continuous `scale`, the feature bank, the clicked query, the default
thresholds, the clusters) and which controls the viewer shows. `FeatureField` (field.py) holds what every method
shares: the ray caster, the similarity product, negatives and the floater filter. Subclasses register themselves
by `name`; `method_class(name)` picks one from a CLI string. A third method is one new module imported by
`backend/features/__init__.py`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..core.errors import SplatsegError

if TYPE_CHECKING:
    from .contrib_cache import ContributionCache

_REGISTRY: dict[str, type[FeatureMethod]] = {}


@dataclasses.dataclass(frozen=True)
class ClickEvidence:
    """What a click offers for choosing its granularity when the caller gave none."""

    contributors: list[tuple[Tensor, Tensor]]
    """Per positive ray that hit: the Gaussians it composites (ids [L] int64) and their weights ([L] float64)."""
    mask_scales: list[float]
    """Per positive click made in a view whose masks are in the workspace (same name and size): the 3D scale of
    the largest mask covering the clicked pixel (NaN where none covers it); empty for other cameras."""


class FeatureMethod:
    name: ClassVar[str]
    """The CLI's `--method` value and the workspace file's stem (features/<name>.safetensors)."""
    levels: ClassVar[tuple[str, ...]] = ()
    """Named granularities ("coarse", "fine"); empty when the method takes a continuous `scale` instead."""
    uses_scale: ClassVar[bool] = False
    """True when the granularity is a 3D scale (scene units): the viewer then shows a scale slider."""
    config_type: ClassVar[type]
    """The dataclass of training options (iterations, seed, ...)."""
    stored: ClassVar[tuple[str, ...]] = ("features",)
    """The tensors `train` saves; a features file lacking one of them would select nothing, so loading refuses it."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.name] = cls

    def __init__(self, features: Tensor, tensors: dict[str, Tensor]) -> None:  # features [N, D] float32
        self.features = features
        self.tensors = tensors

    # ---- training ----------------------------------------------------------------------------------------------
    @classmethod
    def train(cls, cache: ContributionCache, neighbors: Tensor, config: Any, progress: bool) -> dict[str, Tensor]:
        """Train from the contributions cache; returns the tensors to save (store.py lists them)."""
        raise NotImplementedError

    # ---- reading a trained field -------------------------------------------------------------------------------
    @property
    def default_scale(self) -> float | None:
        return None

    def granularity(self, level: str | None, scale: float | None) -> tuple[str | None, float | None]:
        """Check and complete the caller's level / scale (SplatsegError with the fix when it is the wrong kind)."""
        raise NotImplementedError

    def default_threshold(self, level: str | None) -> float:
        raise NotImplementedError

    def floater_keep_ratio(self, level: str | None) -> float | None:
        """How big (relative to the largest component touching the click) a separate piece of the selection must
        be to survive the floater filter at this granularity; None = the filter's own (2%: a table's legs stay)."""
        return None

    UNCOVERED_LIMIT: ClassVar[float | None] = None
    """A click on a masked thing drops selected Gaussians whose footprint lies more than this share where no mask
    is (`coverage.py`); None = keep them. Only at the coarse granularity (`uncovered_limit`)."""

    def uncovered_limit(self, level: str | None) -> float | None:
        """`UNCOVERED_LIMIT` where it applies: the object level (click's coarse level; SAGA's every scale)."""
        return self.UNCOVERED_LIMIT if level in (None, "coarse") else None

    def grow_edge_cos(self, level: str | None) -> float | None:
        """At this granularity, keep only the selected Gaussians linked to the click through selected 3D neighbours
        whose features agree above this cosine (grow.py); None = no growth, the floater filter alone."""
        return None

    def piece_cos(self, level: str | None) -> float | None:
        """At this granularity, add back the selected pieces that growth dropped, touch nothing grown and are as
        alike to the grown piece as this cosine (pieces.py: a part in several pieces); None = off."""
        return None

    HIDDEN_WEIGHT: ClassVar[float | None] = None
    """Gaussians whose training weight is below this share of the scene's median follow the seen Gaussians of
    their surface instead of their features (hidden.py); None = off. Needs the stored `training_weight`."""
    HIDDEN_NORMAL_COS: ClassVar[float] = 0.9
    """Two neighbouring flat splats lie on one surface for hidden.py when their normals agree above this cosine."""

    def hidden_weight(self, level: str | None) -> float | None:
        """`HIDDEN_WEIGHT` where it applies (every granularity unless a method says otherwise)."""
        return self.HIDDEN_WEIGHT

    def hidden_feature_cos(self, level: str | None) -> float | None:
        """At a part granularity, hidden patches are linked only through pairs whose features agree above this
        cosine, and they only add to a selection (hidden.py); None = the surface alone decides (objects)."""
        return None

    def click_scale(self, evidence: ClickEvidence) -> float | None:
        """The scale a click without level or scale queries at; None = the method's default granularity."""
        return None

    def bank(self, level: str | None, scale: float | None) -> Tensor:  # [D', N] unit columns
        raise NotImplementedError

    def build_bank(self, level: str | None, scale: float | None) -> Tensor:  # [D', N] unit columns
        """`bank` made without touching the method's caches (the field's background builder calls it unlocked)."""
        raise NotImplementedError

    def forget_bank(self, level: str | None, scale: float | None) -> None:
        """Drop `bank`'s cached copy for this granularity: the field has made its blocked copy (`PrunedBank`) and keeps
        only that one; a later `bank` call builds it again."""

    selects_unbuilt: ClassVar[bool] = False
    """True when `select_unbuilt` answers a click exactly without the bank (the field then never builds a bank in
    a click: see bank_cache.py)."""

    def select_unbuilt(
        self, positives: Tensor, negatives: Tensor | None, threshold: float, level: str | None, scale: float | None
    ) -> np.ndarray:  # [P, D'], [Q, D'] | None → [S] ascending Gaussian ids
        """The selection the bank would give (threshold and negatives, as `FeatureField` applies them)."""
        raise NotImplementedError

    def query(self, blended: Tensor, level: str | None, scale: float | None) -> Tensor:  # [D] → [D'] unit
        """The clicked feature from the weighted sum of the clicked pixel's contributors' features."""
        raise NotImplementedError

    def cluster_labels(
        self, level: str | None, scale: float | None, gaussian_features: Callable[[], Tensor]
    ) -> np.ndarray:  # [N] int64, -1 = none
        raise NotImplementedError


def method_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def method_class(name: str) -> type[FeatureMethod]:
    """The method registered as `name`, or a SplatsegError listing the known ones."""
    cls = _REGISTRY.get(name)
    if cls is None:
        raise SplatsegError(f"unknown method {name!r}; choose one of {', '.join(_REGISTRY)}")
    return cls


def unit_query(v: Tensor) -> Tensor:  # [D] → [D] v / max(‖v‖, 1e-12), F.normalize's rule
    """A click's query made unit length. On a CPU tensor in NumPy: torch's `F.normalize` on one short vector costs
    ~0.1 ms of dispatch, a thirtieth of a 1M click; the norm is summed in float64, so it may differ from torch's in
    the last bit (every path of a click makes its query here, so they agree with each other)."""
    if v.device.type != "cpu" or v.requires_grad:
        return torch.nn.functional.normalize(v, dim=0)
    a = v.detach().numpy()
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    wide = a.astype(np.float64)
    norm = math.sqrt(float(wide @ wide))
    return torch.from_numpy(a / np.float32(max(norm, 1e-12)))
