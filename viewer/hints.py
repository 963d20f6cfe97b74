"""What the viewer says when a click has nothing to answer it: no features yet, and how long making them takes here.

The training-time estimate is deliberately rough: measured once on a 2-core CPU (152,746 Gaussians, 6 views of
64×64: precomputing contributions 11.9 s, i.e. ~3.2 ns per Gaussian·pixel, then ~0.6 s per iteration), and
assumed ~30× faster on a CUDA GPU. It tells a user whether to wait minutes or an hour, not the exact time.
"""

from __future__ import annotations

from collections.abc import Sequence

from backend.core.camera import Camera

_PRECOMPUTE_S_PER_GAUSSIAN_PIXEL = 3.2e-9
_S_PER_ITERATION = 0.6
_ITERATIONS = 1200
_GPU_SPEEDUP = 30.0
_DEFAULT_PIXELS = 48 * 512 * 512  # the virtual cameras a scene without cameras gets


def train_minutes_estimate(num_gaussians: int, cameras: Sequence[Camera], *, cuda: bool) -> int:
    pixels = sum(c.width * c.height for c in cameras) or _DEFAULT_PIXELS
    seconds = _PRECOMPUTE_S_PER_GAUSSIAN_PIXEL * num_gaussians * pixels + _S_PER_ITERATION * _ITERATIONS
    if cuda:
        seconds /= _GPU_SPEEDUP
    return max(1, round(seconds / 60))


FIELD_LOADING = "the click features are still loading (clicks work once they are in; box-select works now)"
"""The field's problem while `splatseg view` loads trained features in the background: nothing to prepare or train."""
FEATURES_LOADED = "features loaded"
"""What `splatseg view` prints when the background load is done (scripts that drive the viewer wait for it)."""


def no_features_message(num_gaussians: int, cameras: Sequence[Camera], *, cuda: bool, why: str | None = None) -> str:
    if why == FIELD_LOADING:
        return why
    minutes = train_minutes_estimate(num_gaussians, cameras, cuda=cuda)
    lead = f"{why}: " if why else ""
    return (
        f"{lead}no features yet — Prepare, then Train (about {minutes} min here), or use Segment without training "
        "(the buttons are in the Features and Segment without training panels; box-select works now: shift-drag)"
    )
