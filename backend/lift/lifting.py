"""Inverse rendering of 2D masks onto Gaussians: SA3D's projection loss, solved in closed form.

SA3D gives every 3D element a mask confidence c and, per view, minimises
    L = −Σ_{p ∈ M} m(p) + λ Σ_{p ∉ M} m(p),    m(p) = Σ_i w_pi c_i,
where M is SAM's mask and w_pi the blend weight of element i at pixel p; the λ term is its negative refinement
(what renders outside the mask is pushed down). With the geometry frozen, L is linear in c:
    L = −Σ_i c_i (in_i − λ out_i),    in_i = Σ_{p ∈ M} w_pi,  out_i = Σ_{p ∉ M} w_pi,
so over c ∈ [0, 1] its minimum is c_i = 1 exactly where in_i − λ out_i > 0, and summing the loss over views sums
in and out. That is the whole lifting: two index-adds over a view's fragments, no optimiser, no learning rate, and
the order of views does not matter. Occlusion is in the weights: a Gaussian hidden in a view gets no evidence
from it, for or against.

One change to SA3D's sums: each view's in and out are divided by the Gaussian's footprint in that view (the area of
its projected profile, in pixels). Raw pixel sums grow with resolution and with 1/distance², so a 1080p viewport or a
close-up would outvote every dataset view; per footprint, a view's vote is the share of the Gaussian it saw inside
or outside the mask (opacity and occlusion included), whatever its resolution or distance.

What the closed form cannot see is how much of a Gaussian a view actually showed. A faint floater in front of the
object, or a Gaussian glimpsed through the object's edge, collects inside-evidence only and would pass. Its
`support` (the inside share of the view) is small: a Gaussian must reach `min_support` in at least `min_views` views.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.scene import GaussianScene
from ..render.fragments import Fragments, rasterize_fragments
from ..render.projection import project

DEFAULT_NEGATIVE_WEIGHT = 1.5
"""λ: a Gaussian is kept when its share seen inside the masks exceeds λ× its share seen outside. Above 1, so that one
seen inside the mask in one view and as clearly outside it in another is removed (the point of negative refinement)
while two views for it outvote one against; not far above, so that silhouette Gaussians, whose footprints straddle
the mask's edge, survive. On the tabletop benchmark 1, 1.5 and 2 all give held-out IoU ≥ 0.97 with perfect masks."""

DEFAULT_MIN_SUPPORT = 0.01
"""Minimum `support`: a fully visible opaque surface splat scores about 0.1–0.3 (its neighbours overlap it), a
Gaussian seen only through an edge or a faint floater far less."""


@dataclasses.dataclass
class ViewGeometry:
    """One view's blend weights and footprints: computed once, used to render the current 3D mask and to lift."""

    camera: Camera
    fragments: Fragments
    footprint: Tensor  # [N] float32 pixel area of each Gaussian's 2D profile in this view, 0 where not projected
    depth: Tensor  # [N] float32 camera-space z of each Gaussian's centre

    @property
    def num_gaussians(self) -> int:
        return self.fragments.num_gaussians

    def composite(self, values: Tensor) -> Tensor:  # values [N] or [N, C] → [H, W] or [H, W, C]
        """Σ_i w_pi values_i per pixel: the rendered image of per-Gaussian values."""
        f = self.fragments
        v = values[f.gaussian]
        w = f.weight if v.ndim == 1 else f.weight[:, None]
        out = torch.zeros((f.height * f.width, *v.shape[1:]), dtype=v.dtype, device=v.device)
        out.index_add_(0, f.pixel, v * w)
        return out.reshape(f.height, f.width, *v.shape[1:])

    def alpha(self) -> Tensor:  # [H, W]
        return self.fragments.alpha()

    def depth_map(self) -> Tensor:  # [H, W] expected depth where covered, the farthest covered depth elsewhere
        alpha = self.alpha()
        d = self.composite(self.depth) / alpha.clamp(min=1e-6)
        covered = alpha > 1e-3
        far = d[covered].max() if covered.any() else torch.tensor(1.0)
        return torch.where(covered, d, far)

    def selection_mask(self, selected: Tensor, threshold: float = 0.5) -> Tensor:  # selected [N] bool → [H, W] bool
        """Pixels where the selection carries more than `threshold` of the opacity (as `selection_mask_image`)."""
        alpha = self.alpha()
        values = torch.as_tensor(selected).to(device=alpha.device, dtype=torch.float32)
        frac = self.composite(values) / alpha.clamp(min=1e-6)
        return (frac > threshold) & (alpha > 0.5)


def view_geometry(scene: GaussianScene, camera: Camera) -> ViewGeometry:
    """Rasterise `camera`'s view once (all pixels) and measure each Gaussian's projected footprint."""
    with torch.no_grad():
        proj = project(scene, camera)
        frags = rasterize_fragments(scene, camera, projected=proj)
        footprint = torch.zeros(len(scene), device=scene.device)
        a, b, c = proj.conics.unbind(-1)
        # ∫ exp(-½ dᵀΣ⁻¹d) dd = 2π sqrt(det Σ) = 2π / sqrt(det Σ⁻¹)
        footprint[proj.ids] = (2 * math.pi) / torch.sqrt((a * c - b * b).clamp(min=1e-12))
        R = torch.as_tensor(camera.world_to_camera[:3, :3], dtype=torch.float32, device=scene.device)
        t = torch.as_tensor(camera.world_to_camera[:3, 3], dtype=torch.float32, device=scene.device)
        depth = scene.means @ R[2] + t[2]
    return ViewGeometry(camera=camera, fragments=frags, footprint=footprint, depth=depth)


class GeometryCache:
    """`view_geometry` with the most recent views kept, up to a budget of fragments.

    Rasterising a view is nearly all of a view's cost without SAM, and the same views come back: a second object
    segmented from the same capture, the ground-truth predictor and the evaluation looking at the loop's views.
    """

    BYTES_PER_FRAGMENT = 20  # int64 pixel + int64 Gaussian + float32 weight

    def __init__(self, scene: GaussianScene, *, max_bytes: int = 512 * 2**20) -> None:
        self.scene = scene
        self.max_bytes = max_bytes
        self._views: collections.OrderedDict[tuple, ViewGeometry] = collections.OrderedDict()
        self._bytes = 0

    @staticmethod
    def _key(camera: Camera) -> tuple:
        return (camera.name, camera.width, camera.height, camera.K.tobytes(), camera.world_to_camera.tobytes())

    def __call__(self, camera: Camera) -> ViewGeometry:
        key = self._key(camera)
        geometry = self._views.get(key)
        if geometry is not None:
            self._views.move_to_end(key)
            return geometry
        geometry = view_geometry(self.scene, camera)
        size = geometry.fragments.pixel.numel() * self.BYTES_PER_FRAGMENT
        while self._views and self._bytes + size > self.max_bytes:
            _, old = self._views.popitem(last=False)
            self._bytes -= old.fragments.pixel.numel() * self.BYTES_PER_FRAGMENT
        if size <= self.max_bytes:
            self._views[key] = geometry
            self._bytes += size
        return geometry


@dataclasses.dataclass(frozen=True)
class ViewEvidence:
    """What one mask said about the Gaussians, in footprints: the share of each Gaussian the view saw inside the mask
    and outside it (each in [0, ~1]; 0 and 0 where the view did not see it)."""

    inside: Tensor  # [N] float32 Σ_{p ∈ M} w_pi / footprint_i
    outside: Tensor  # [N] float32 Σ_{p ∉ M} w_pi / footprint_i

    @property
    def support(self) -> Tensor:  # [N]
        return self.inside


def view_evidence(geometry: ViewGeometry, mask: Tensor | np.ndarray) -> ViewEvidence:
    """The per-Gaussian gradient of SA3D's projection loss for one view's mask [H, W] bool, split in its two terms
    and measured per footprint."""
    f = geometry.fragments
    m = torch.as_tensor(np.asarray(mask), dtype=torch.bool, device=f.weight.device).reshape(-1)
    if m.numel() != f.width * f.height:
        raise ValueError(f"mask has {m.numel()} pixels, the view {f.width}×{f.height}")
    hit = m[f.pixel]
    n = f.num_gaussians
    per_footprint = f.weight / geometry.footprint[f.gaussian].clamp(min=1e-6)
    inside = torch.zeros(n, device=f.weight.device).index_add_(0, f.gaussian[hit], per_footprint[hit])
    outside = torch.zeros(n, device=f.weight.device).index_add_(0, f.gaussian[~hit], per_footprint[~hit])
    return ViewEvidence(inside=inside, outside=outside)


class MaskLifter:
    """Accumulates the evidence of any number of (view, mask) pairs and turns it into a selection.

    Adding a view is O(fragments of the view); reading the selection O(N). Views can be added in any order and the
    result is the same (the loss is a sum).
    """

    def __init__(
        self,
        num_gaussians: int,
        *,
        negative_weight: float = DEFAULT_NEGATIVE_WEIGHT,
        min_support: float = DEFAULT_MIN_SUPPORT,
        min_views: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        if negative_weight < 0:
            raise ValueError(f"negative_weight must be ≥ 0, got {negative_weight}")
        self.negative_weight = negative_weight
        self.min_support = min_support
        self.min_views = min_views
        # float64: thousands of small weights are summed per Gaussian.
        self.inside = torch.zeros(num_gaussians, dtype=torch.float64, device=device)  # [N]
        self.outside = torch.zeros(num_gaussians, dtype=torch.float64, device=device)  # [N]
        self.support = torch.zeros(num_gaussians, dtype=torch.float32, device=device)  # [N] largest inside share
        self.views_inside = torch.zeros(num_gaussians, dtype=torch.int32, device=device)  # [N] views with support
        self.views = 0

    @property
    def num_gaussians(self) -> int:
        return self.inside.shape[0]

    def add(self, evidence: ViewEvidence) -> None:
        self.inside += evidence.inside.to(self.inside)
        self.outside += evidence.outside.to(self.outside)
        support = evidence.support.to(self.support)
        torch.maximum(self.support, support, out=self.support)
        self.views_inside += (support >= self.min_support).to(self.views_inside.dtype)
        self.views += 1

    def add_view(self, geometry: ViewGeometry, mask: Tensor | np.ndarray) -> ViewEvidence:
        evidence = view_evidence(geometry, mask)
        self.add(evidence)
        return evidence

    def score(self) -> Tensor:  # [N] float64: −∂L/∂c, summed over the views
        return self.inside - self.negative_weight * self.outside

    def confidence(self) -> Tensor:  # [N] float32 in [−λ, 1]; 0 where no view saw the Gaussian
        """The score per unit of weight seen: 1 = only ever inside the masks, −λ = only ever outside."""
        seen = self.inside + self.outside
        return torch.where(seen > 0, self.score() / seen.clamp(min=1e-12), torch.zeros_like(seen)).float()

    def weakly_supported(self) -> Tensor:  # [N] bool
        """Seen inside a mask with at least `min_support` of its footprint in fewer than `min_views` views (or than
        all the views lifted so far, while there are fewer)."""
        return self.views_inside < max(min(self.min_views, self.views), 1)

    def selection(self) -> Tensor:  # [N] bool
        """The closed-form minimiser of the summed loss, less the weakly supported Gaussians (floaters)."""
        return (self.score() > 0) & ~self.weakly_supported()


def lift_masks(
    scene: GaussianScene,
    views: list[tuple[Camera, np.ndarray]],  # (camera, mask [H, W] bool)
    *,
    negative_weight: float = DEFAULT_NEGATIVE_WEIGHT,
    min_support: float = DEFAULT_MIN_SUPPORT,
) -> np.ndarray:  # [N] bool
    """The Gaussians a set of 2D masks describe: the one-call form of `MaskLifter`."""
    lifter = MaskLifter(len(scene), negative_weight=negative_weight, min_support=min_support, device=scene.device)
    for camera, mask in views:
        lifter.add_view(view_geometry(scene, camera), mask)
    return lifter.selection().cpu().numpy()
