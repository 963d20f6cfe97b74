"""Cross-view self-prompting: SA3D's loop, on Gaussians.

Click in one view → the predictor's mask → lifted to the Gaussians. Then, view after view (see `views.next_view`):
render the current 3D mask there, pick prompt points from it, ask the predictor, check that its answer agrees with
the rendering (SA3D skips a view whose answer has IoU < 0.5 with it: a wrong prompt must not poison the 3D mask),
lift it, and stop after the view budget or once the selection no longer changes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from ..core.camera import Camera
from ..core.errors import InputError
from ..core.scene import GaussianScene
from .lifting import DEFAULT_MIN_SUPPORT, DEFAULT_NEGATIVE_WEIGHT, MaskLifter, ViewGeometry, view_geometry
from .predictor import Granularity, MaskPredictor, Point, choose_by_granularity
from .views import DEFAULT_MAX_STEP_DEG, next_view

_SUPPRESSED = -1e5


def prompt_points(
    score: Tensor | np.ndarray,  # [H, W] rendered mask confidence (≤ 0: not the object)
    depth: Tensor | np.ndarray,  # [H, W] rendered depth
    *,
    num_points: int = 3,
) -> list[Point]:
    """SA3D's self-prompt rule: the most confident pixel first, then confidence decayed by distance to the points
    already taken.

    Every later point maximises, over the points k taken so far, score(p) − d_k(p)·s_max, where d_k is the
    distance in (y/H, x/W, normalised depth), min–max scaled to [0, 1], and s_max the first point's score; a square
    of half-size √(area/π)/2 around each taken point is excluded. So the points spread over the mask but stay near
    one another on the same surface (a far, other-depth blob of a bad rendering does not attract one), and picking
    stops when nothing scores above zero. Returned as pixel centres (x + 0.5, y + 0.5).
    """
    s = _cpu_float(score)
    d = _cpu_float(depth)
    h, w = s.shape
    flat = s.reshape(-1)
    best = int(torch.argmax(flat))
    s_max = float(flat[best])
    if num_points <= 0 or s_max <= 0:
        return []
    taken = [(best % w, best // w)]
    area = float(s.clamp(0, 1).sum())
    half = max(int(math.sqrt(area / math.pi)) // 2, 2)

    ys = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w) / h
    xs = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w) / w
    dn = (d - d.min()) / (d.max() - d.min()).clamp(min=1e-12)
    index = torch.stack([ys, xs, dn], dim=-1)  # [H, W, 3]

    suppressed = s.clone()
    combined: Tensor | None = None
    for _ in range(num_points - 1):
        x, y = taken[-1]
        suppressed[max(y - half, 0) : y + half + 1, max(x - half, 0) : x + half + 1] = _SUPPRESSED
        dist = torch.linalg.vector_norm(index - index[y, x], dim=-1)
        dist = (dist - dist.min()) / (dist.max() - dist.min()).clamp(min=1e-12)
        current = suppressed - dist * s_max
        combined = current if combined is None else torch.maximum(combined, current)
        combined[suppressed == _SUPPRESSED] = _SUPPRESSED
        k = int(torch.argmax(combined))
        if float(combined.reshape(-1)[k]) <= 0:
            break
        taken.append((k % w, k // w))
    return [(x + 0.5, y + 0.5) for x, y in taken]


def _cpu_float(x: Tensor | np.ndarray) -> Tensor:
    return x.detach().to("cpu", torch.float32) if isinstance(x, Tensor) else torch.as_tensor(x, dtype=torch.float32)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


@dataclasses.dataclass(frozen=True)
class Sa3dOptions:
    """Everything that steers one SA3D run; the defaults are the benchmarked ones."""

    views: int = 8
    """View budget, the clicked one included: views tried, whether their answer was lifted or not (each costs a
    rasterisation and, with SAM, an embedding)."""
    granularity: Granularity = "whole"
    """Which of the clicked view's candidates the click means (later views follow the 3D mask)."""
    negative_weight: float = DEFAULT_NEGATIVE_WEIGHT
    """λ of SA3D's projection loss (see `lifting`)."""
    min_support: float = DEFAULT_MIN_SUPPORT
    """Gaussians seen inside a mask with less of their footprint than this are floaters (see `lifting`)."""
    min_views: int = 1
    """…in at least this many views (2 also drops what only the clicked view saw, e.g. a floater near its camera)."""
    num_prompts: int = 3
    """Self-prompt points per view (SA3D's default)."""
    max_step_deg: float = DEFAULT_MAX_STEP_DEG
    """How far (at the object) the next view may be from a done one (see `views`)."""
    min_agreement: float = 0.5
    """A view's answer must have at least this IoU with the rendered 3D mask to be lifted."""
    max_side: int | None = 512
    """Views are worked on at most this many pixels along their longer side (clicks are scaled to match): the CPU
    rasteriser's cost grows with the pixels, SAM looks at 1024 px anyway, and the lifting needs no more."""
    converge_tol: float = 0.002
    """The selection counts as unchanged when less than this fraction of it flipped."""
    patience: int = 2
    """Stop after this many accepted views in a row left the selection unchanged."""

    def __post_init__(self) -> None:
        if self.views < 1:
            raise InputError(f"--views must be at least 1, got {self.views}")
        if self.num_prompts < 1:
            raise InputError(f"the number of self-prompt points must be at least 1, got {self.num_prompts}")


@dataclasses.dataclass(frozen=True)
class ViewStep:
    """One view of the loop, as the progress callback sees it."""

    index: int
    """0 for the clicked view."""
    total: int
    """The view budget."""
    camera: Camera
    points: tuple[Point, ...]
    """The prompt: the clicks (positives, then negatives), or the self-prompt points (all positive)."""
    rendered: np.ndarray  # [H, W] bool the 3D mask rendered in this view before its answer was lifted
    mask: np.ndarray | None  # [H, W] bool the predictor's answer (None: no prompt could be placed)
    image: np.ndarray | None  # [H, W, 3] uint8 what the predictor looked at (None when it needs no image)
    agreement: float
    """IoU of `mask` with `rendered` (NaN in the clicked view, where nothing is rendered yet)."""
    accepted: bool
    """Whether this view's mask was lifted."""
    selection: np.ndarray  # [N] bool the 3D mask after this view
    selected: int
    """Gaussians selected after this view."""
    changed: float
    """Fraction of the selection that flipped with this view."""
    seconds: float
    predictor_seconds: float


@dataclasses.dataclass
class Sa3dResult:
    mask: np.ndarray  # [N] bool the selection
    confidence: np.ndarray  # [N] float32 in [−λ, 1] (see `MaskLifter.confidence`)
    steps: list[ViewStep]
    stopped: Literal["views", "converged", "no_views", "cancelled"]
    """Why the loop ended: the budget was spent, the selection stopped changing, no camera was left, or cancelled."""
    seconds: float

    @property
    def views_used(self) -> int:
        """Views whose mask was lifted (≤ the views tried, `len(steps)`)."""
        return sum(1 for s in self.steps if s.accepted)


ImageSource = Callable[[Camera], np.ndarray]
"""camera → [H, W, 3] uint8 RGB: the photo, or a render of the Gaussians."""


def scene_images(scene: GaussianScene, *, geometry: Callable[[Camera], ViewGeometry] | None = None) -> ImageSource:
    """Each view's photo where the scene has one, else the Gaussians' colours composited with the view's weights
    (from `geometry`, so a view the loop has rasterised costs no second rasterisation)."""
    from ..render.output import to_uint8
    from ..render.reference import gaussian_colors

    rasterise = geometry or (lambda camera: view_geometry(scene, camera))

    def image(camera: Camera) -> np.ndarray:
        if camera.image_path is not None:
            from ..io.images import read_image

            img = read_image(camera.image_path)
            if img.shape[:2] != (camera.height, camera.width):  # a view worked on below the photo's size
                from PIL import Image

                img = np.asarray(Image.fromarray(img).resize((camera.width, camera.height), Image.BILINEAR))
            return img
        with torch.no_grad():
            return to_uint8(rasterise(camera).composite(gaussian_colors(scene, camera)))

    return image


def capped(camera: Camera, max_side: int | None) -> Camera:
    """`camera` scaled down (never up) so that its longer side is at most `max_side` pixels."""
    if max_side is None or max(camera.width, camera.height) <= max_side:
        return camera
    f = max_side / max(camera.width, camera.height)
    return camera.scaled(max(1, round(camera.width * f)), max(1, round(camera.height * f)))


class _LastView:
    """`view_geometry` remembering the last view: the loop and the default image source ask for it in turn."""

    def __init__(self, scene: GaussianScene) -> None:
        self.scene = scene
        self._last: tuple[Camera, ViewGeometry] | None = None

    def __call__(self, camera: Camera) -> ViewGeometry:
        if self._last is None or self._last[0] is not camera:
            self._last = (camera, view_geometry(self.scene, camera))
        return self._last[1]


def _resolve_view(cameras: Sequence[Camera], view: str | Camera) -> Camera:
    if isinstance(view, Camera):
        return view
    from ..io.cameras import find_camera

    return find_camera(cameras, view)


def segment_sa3d(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    predictor: MaskPredictor,
    *,
    view: str | Camera,
    pixels: Sequence[Point],  # [(x, y)] clicks on the object, in `view`'s pixels
    negatives: Sequence[Point] = (),  # [(x, y)] clicks on what is not the object, in the same view
    options: Sa3dOptions | None = None,
    images: ImageSource | None = None,
    geometry: Callable[[Camera], ViewGeometry] | None = None,
    progress: bool = False,
    on_view: Callable[[ViewStep], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Sa3dResult:
    """Segment the object under `pixels` in `view` without training: SAM (or any `MaskPredictor`) + lifting.

    `view` may be a camera outside `cameras` (a viewer's viewport); the following views come from `cameras`.
    `on_view` is called after every view (from this thread); `should_stop` is polled between views. `geometry`
    rasterises a view (default `view_geometry`; pass a `GeometryCache` to reuse views across runs).
    """
    from tqdm import tqdm

    opts = options or Sa3dOptions()
    rasterise = geometry or _LastView(scene)
    images = images or scene_images(scene, geometry=rasterise)
    t_start = time.perf_counter()
    full = _resolve_view(cameras, view)
    clicks = [(float(x), float(y)) for x, y in pixels] + [(float(x), float(y)) for x, y in negatives]
    if not pixels:
        raise InputError("SA3D needs at least one click on the object")
    for x, y in clicks:
        if not (0 <= x < full.width and 0 <= y < full.height):
            raise InputError(f"pixel ({x:g}, {y:g}) is outside view {full.name!r} ({full.width}×{full.height})")
    click_labels = [1] * len(pixels) + [0] * len(negatives)
    start = capped(full, opts.max_side)
    sx, sy = start.width / full.width, start.height / full.height
    clicks = [(x * sx, y * sy) for x, y in clicks]
    cameras = [capped(c, opts.max_side) for c in cameras]

    lifter = MaskLifter(
        len(scene),
        negative_weight=opts.negative_weight,
        min_support=opts.min_support,
        min_views=opts.min_views,
        device=scene.device,
    )
    selection = torch.zeros(len(scene), dtype=torch.bool, device=scene.device)
    steps: list[ViewStep] = []
    done: set[str] = set()
    skipped: set[str] = set()
    quiet = 0
    stopped: Literal["views", "converged", "no_views", "cancelled"] = "views"
    camera: Camera | None = start
    bar = tqdm(total=opts.views, desc="sa3d", unit="view", disable=not progress, leave=False)
    try:
        while camera is not None:
            t0 = time.perf_counter()
            geo = rasterise(camera)
            rendered = geo.selection_mask(selection).cpu().numpy()
            first = not steps
            t_pred = time.perf_counter()
            image = images(camera) if predictor.needs_image else None
            if first:
                points, labels = clicks, click_labels
                mask = _ask(predictor, camera, image, points, labels, granularity=opts.granularity)
                if mask is None or not mask.any():
                    where = ", ".join(f"({x:g}, {y:g})" for x, y in pixels)
                    raise InputError(f"nothing to segment under pixel {where} of view {full.name!r}")
                agreement, accepted = float("nan"), True
            else:
                points = _self_prompts(geo, lifter, selection, opts.num_prompts)
                labels = [1] * len(points)
                mask = (
                    _ask(
                        predictor,
                        camera,
                        image,
                        points,
                        labels,
                        granularity=opts.granularity,
                        agree_with=rendered,
                        min_agreement=opts.min_agreement,
                    )
                    if points
                    else None
                )
                agreement = mask_iou(mask, rendered) if mask is not None else 0.0
                accepted = mask is not None and agreement >= opts.min_agreement
            predictor_seconds = time.perf_counter() - t_pred

            changed = 0.0
            if accepted:
                lifter.add_view(geo, mask)
                new = lifter.selection()
                changed = int((new ^ selection).sum()) / max(int(new.sum()), 1)
                selection = new
                done.add(camera.name)
                quiet = quiet + 1 if (not first and changed <= opts.converge_tol) else 0
            else:
                skipped.add(camera.name)
            step = ViewStep(
                index=len(steps),
                total=opts.views,
                camera=camera,
                points=tuple(points),
                rendered=rendered,
                mask=mask,
                image=image,
                agreement=agreement,
                accepted=accepted,
                selection=selection.cpu().numpy(),
                selected=int(selection.sum()),
                changed=changed,
                seconds=time.perf_counter() - t0,
                predictor_seconds=predictor_seconds,
            )
            steps.append(step)
            bar.update(1)
            bar.set_postfix(selected=step.selected, agree=f"{agreement:.2f}")
            if on_view is not None:
                on_view(step)

            if len(steps) >= opts.views:
                stopped = "views"
                break
            if quiet >= opts.patience:
                stopped = "converged"
                break
            if should_stop is not None and should_stop():
                stopped = "cancelled"
                break
            camera = next_view(
                cameras, done, _center(scene, lifter, selection), max_step_deg=opts.max_step_deg, skip=skipped
            )
            if camera is None:
                stopped = "no_views"
    finally:
        bar.close()
    return Sa3dResult(
        mask=selection.cpu().numpy(),
        confidence=lifter.confidence().cpu().numpy(),
        steps=steps,
        stopped=stopped,
        seconds=time.perf_counter() - t_start,
    )


def _center(scene: GaussianScene, lifter: MaskLifter, selection: Tensor) -> np.ndarray:  # → [3]
    """The selection's centre, weighted by how much of each Gaussian the masks showed (robust to stray ones)."""
    w = (lifter.inside.float() * selection).clamp(min=0)
    if float(w.sum()) <= 0:
        w = lifter.inside.float()
    return ((scene.means * w[:, None]).sum(0) / w.sum().clamp(min=1e-12)).cpu().double().numpy()


def _self_prompts(geometry: ViewGeometry, lifter: MaskLifter, selection: Tensor, num: int) -> list[Point]:
    """Prompt points from the rendered confidence of the selected Gaussians."""
    conf = lifter.confidence().clamp(min=0) * selection
    return prompt_points(geometry.composite(conf), geometry.depth_map(), num_points=num)


def _ask(
    predictor: MaskPredictor,
    camera: Camera,
    image: np.ndarray | None,
    points: list[Point],
    labels: list[int],
    *,
    granularity: Granularity,
    agree_with: np.ndarray | None = None,  # [H, W] bool the rendered 3D mask
    min_agreement: float = 0.5,
) -> np.ndarray | None:  # [H, W] bool
    """One multimask question to the predictor, and the candidate the click's granularity means.

    In the clicked view that is `choose_by_granularity`. In later views only the candidates that agree with the
    rendered 3D mask compete, and the granularity picks among them. Taking the best-agreeing candidate instead
    drifts: where the first view saw mostly one part of the object, the part agrees best with the rendering, the rest
    of the object is lifted as outside, and the selection shrinks to the part.
    """
    predictor.set_view(camera, image)
    masks, scores = predictor.predict(points, labels, multimask=True)
    if len(masks) == 0:
        return None
    masks = np.asarray(masks, dtype=bool)
    if masks.shape[1:] != (camera.height, camera.width):
        raise ValueError(
            f"the predictor answered {masks.shape[1:]} for view {camera.name!r} ({camera.width}×{camera.height})"
        )
    if agree_with is None:
        return masks[choose_by_granularity(masks, scores, granularity)]
    agreement = np.array([mask_iou(m, agree_with) for m in masks])
    ok = np.flatnonzero(agreement >= min_agreement)
    if len(ok) == 0:
        return masks[int(np.argmax(agreement))]
    return masks[ok[choose_by_granularity(masks[ok], np.asarray(scores)[ok], granularity)]]
