"""The `sam` mask source: segment-anything's automatic mask generator on every view.

This is where SAGA and Click-Gaussian get their masks: a grid of point prompts over each image, every mask SAM is
confident in (whole objects, parts and sub-parts, overlapping) kept with its predicted IoU. A view with no photo is
rendered from the Gaussians instead, so a model without its images can still be segmented.

Checkpoints are loaded as plain state dicts with `torch.load(weights_only=True)`: segment-anything's own loader
unpickles arbitrary objects, and a checkpoint is a file from the internet. Without a checkpoint the official one
is downloaded into `~/.cache/splatseg/` when the machine is online; offline that is one clear error naming the flag.
"""

from __future__ import annotations

import functools
import os
import socket
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ..core.camera import Camera
from ..core.errors import InputError
from ..io.atomic import atomic_open
from ..io.images import read_image
from .maskset import ViewMasks

if TYPE_CHECKING:
    from segment_anything import SamAutomaticMaskGenerator
    from segment_anything.modeling import Sam

    from ..core.scene import GaussianScene
    from ..render import Backend
    from ..render.memo import RenderMemo

SamModel = Literal["vit_h", "vit_l", "vit_b"]
SAM_MODELS: tuple[SamModel, ...] = ("vit_h", "vit_l", "vit_b")
DEFAULT_SAM_MODEL: SamModel = "vit_h"
"""The model SAGA and Click-Gaussian use; vit_b is about 4× faster (and coarser) where time matters more."""

CHECKPOINT_HOST = "dl.fbaipublicfiles.com"
CHECKPOINT_FILES: dict[SamModel, str] = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
_ONLINE_TIMEOUT_S = 3.0


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cache_dir() -> Path:
    """Where downloaded checkpoints live: `$XDG_CACHE_HOME/splatseg`, by default `~/.cache/splatseg`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "splatseg"


def checkpoint_url(model_type: SamModel) -> str:
    return f"https://{CHECKPOINT_HOST}/segment_anything/{CHECKPOINT_FILES[model_type]}"


def is_online(host: str = CHECKPOINT_HOST, timeout: float = _ONLINE_TIMEOUT_S) -> bool:
    """A quick TCP connect, so an offline machine fails in seconds rather than in a long download timeout."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def model_type_of(checkpoint: str | os.PathLike[str] | None) -> SamModel:
    """The model a checkpoint's file name says it is (sam_vit_b_01ec64.pth → vit_b), else the default."""
    name = Path(checkpoint).name.lower() if checkpoint is not None else ""
    return next((m for m in SAM_MODELS if m in name), DEFAULT_SAM_MODEL)


def load_sam(
    model_type: SamModel | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str | None = None,
) -> Sam:
    """SAM with trained weights, in eval mode on `device` (default: the GPU when there is one).

    `model_type` None means: what the checkpoint's file name says, else vit_h.
    """
    from segment_anything import sam_model_registry

    if model_type is None:
        model_type = model_type_of(checkpoint)
    if model_type not in SAM_MODELS:
        raise InputError(f"unknown SAM model {model_type!r}; --sam-model takes {', '.join(SAM_MODELS)}")
    path = Path(checkpoint) if checkpoint is not None else _cached_or_download(model_type)
    if not path.is_file():
        raise InputError(f"--sam-checkpoint {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for anything but plain tensors, RuntimeError for a damaged zip
        raise InputError(
            f"--sam-checkpoint {path}: not a plain SAM state dict ({type(e).__name__}); use an official "
            f"checkpoint such as {CHECKPOINT_FILES[model_type]}"
        ) from None
    model = sam_model_registry[model_type](checkpoint=None)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError):
        other = model_type_of(path)
        hint = f" (its name says {other}: pass --sam-model {other})" if other != model_type else ""
        raise InputError(
            f"--sam-checkpoint {path} does not fit SAM {model_type}{hint}; the official {model_type} checkpoint "
            f"is {CHECKPOINT_FILES[model_type]}"
        ) from None
    return model.to(device if device is not None else default_device()).eval()


def _cached_or_download(model_type: SamModel) -> Path:
    target = cache_dir() / CHECKPOINT_FILES[model_type]
    if target.is_file():
        return target
    if not is_online():
        raise InputError(
            f"no SAM checkpoint: pass --sam-checkpoint PATH ({CHECKPOINT_FILES[model_type]} from "
            f"{checkpoint_url(model_type)}) or run online once (it is cached in {cache_dir()})"
        )
    _download(checkpoint_url(model_type), target)
    return target


def _download(url: str, target: Path) -> None:
    from tqdm import tqdm

    try:
        with urllib.request.urlopen(url, timeout=30) as response, atomic_open(target, "wb") as f:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}") as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
    except OSError as e:
        raise InputError(
            f"downloading {url} failed ({e}); download it by hand and pass --sam-checkpoint PATH"
        ) from None


def build_sam_tiny(seed: int = 0, *, image_size: int = 64) -> Sam:
    """SAM's vit_b architecture shrunk (2 encoder blocks, narrow layers, small input) with random weights.

    For tests: the automatic generator runs through exactly the code a real checkpoint does, in well under a second
    on a CPU, without downloading 375 MB. Its masks are meaningless.
    """
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(seed)
    prompt_dim, patch = 32, 8
    grid = image_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=2,
            embed_dim=48,
            img_size=image_size,
            mlp_ratio=2,
            norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2,
            patch_size=patch,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(1,),
            window_size=4,
            out_chans=prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2),
            transformer_dim=prompt_dim,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def mask_generator(sam: Sam, **options: Any) -> SamAutomaticMaskGenerator:
    """The automatic generator with SAM's defaults (32×32 points, pred IoU ≥ 0.88, stability ≥ 0.95); `options`
    override them (e.g. points_per_side=4 for tests)."""
    from segment_anything import SamAutomaticMaskGenerator

    return SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **options)


def generate_view_masks(
    generator: SamAutomaticMaskGenerator,
    image: np.ndarray,  # [H, W, 3] uint8 RGB
    name: str,
) -> ViewMasks:
    """Every mask SAM returns for one image, largest first, scored by its predicted IoU (scales left NaN)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"view {name!r}: SAM takes an [H, W, 3] uint8 image, got {image.shape} {image.dtype}")
    records = generator.generate(image)
    records.sort(key=lambda r: -int(r["area"]))
    h, w = image.shape[:2]
    masks = np.zeros((len(records), h, w), dtype=bool)  # [M, H, W]
    for i, r in enumerate(records):
        masks[i] = r["segmentation"]
    scores = np.array([float(r["predicted_iou"]) for r in records], dtype=np.float32)
    return ViewMasks(name=name, masks=masks, scores=scores, scales=np.full(len(records), np.nan, dtype=np.float32))


class SamMasks:
    """Per view: the photo (or a render of the Gaussians where there is none) → SAM → `ViewMasks`."""

    def __init__(
        self,
        generator: SamAutomaticMaskGenerator,
        scene: GaussianScene | None = None,
        *,
        backend: Backend = "auto",
        renders: RenderMemo | None = None,
    ) -> None:
        self.generator = generator
        self.scene = scene
        self.backend = backend
        self.renders = renders
        """Renders already made (the virtual views' photos), used instead of rendering the view again."""

    def image(self, camera: Camera) -> np.ndarray:  # [H, W, 3] uint8
        if camera.image_path is not None:
            return read_image(camera.image_path)
        if self.scene is None:
            raise InputError(f"view {camera.name!r} has no image and no Gaussians were given to render it")
        from ..render import render, to_uint8

        if self.renders is not None:
            return to_uint8(self.renders.render(self.scene, camera, backend=self.backend).rgb)
        with torch.no_grad():
            return to_uint8(render(self.scene, camera, backend=self.backend).rgb)

    def __call__(self, camera: Camera) -> ViewMasks:
        return generate_view_masks(self.generator, self.image(camera), camera.name)
