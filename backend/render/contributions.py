"""`contributions`: for chosen pixels, the top-k Gaussians and their blend weights.

Feature training keeps geometry frozen, so a rendered feature is Σ wᵢ fᵢ with weights that never change; computing
the (id, weight) lists once per view turns every training step into a gather and a weighted sum (docs/architecture.md,
"frozen geometry makes feature rendering linear").
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.scene import GaussianScene
from .composite import top_k
from .fragments import DEFAULT_PAIR_BUDGET, rasterize_fragments


def contributions(
    scene: GaussianScene,
    camera: Camera,
    pixels: Tensor,  # [P, 2] int (x, y) pixel indices; duplicates allowed
    k: int,
    *,
    pair_budget: int = DEFAULT_PAIR_BUDGET,
) -> tuple[Tensor, Tensor]:  # ids [P, k] int64 (-1 = none), weights [P, k] float32 (0 = none)
    """The k largest blend weights (alpha·transmittance) of each pixel, largest first.

    With k at least the number of contributors, Σ weights·features equals the rendered feature of the pixel.
    """
    pixels = torch.as_tensor(pixels, dtype=torch.int64, device=scene.device).reshape(-1, 2)
    W, H = camera.width, camera.height
    if pixels.numel() and (
        (pixels[:, 0] < 0).any() or (pixels[:, 0] >= W).any() or (pixels[:, 1] < 0).any() or (pixels[:, 1] >= H).any()
    ):
        raise ValueError(f"pixels must lie in the {W}×{H} image of view {camera.name!r}")
    flat = pixels[:, 1] * W + pixels[:, 0]
    mask = torch.zeros(H * W, dtype=torch.bool, device=scene.device)
    mask[flat] = True
    frags = rasterize_fragments(scene, camera, pixel_mask=mask.reshape(H, W), pair_budget=pair_budget)

    ids = torch.full((pixels.shape[0], k), -1, dtype=torch.int64, device=scene.device)
    weights = torch.zeros(pixels.shape[0], k, device=scene.device)
    if frags.pixel.numel() == 0 or k == 0:
        return ids, weights
    # The top k of each rendered pixel (one slot per distinct pixel), then gathered for the requested pixels.
    uniq, slot_of = torch.unique(frags.pixel, return_inverse=True)  # fragments are sorted by pixel: slots are too
    table_ids, table_w = top_k(slot_of, frags.gaussian, frags.weight, uniq.numel(), k)
    slot = torch.full((H * W,), -1, dtype=torch.int64, device=scene.device)
    slot[uniq] = torch.arange(uniq.numel(), device=scene.device)
    row = slot[flat]
    hit = row >= 0
    ids[hit] = table_ids[row[hit]]
    weights[hit] = table_w[row[hit]]
    return ids, weights
