"""gsplat training checkpoints (`ckpt_*.pt`, as gsplat's simple_trainer saves them).

The file is `torch.save({"step": int, "splats": splats.state_dict(), ...})`; `splats` holds the same stored
(pre-activation) parameters as an INRIA PLY: means [N, 3], quats [N, 4] (wxyz), scales [N, 3] (log),
opacities [N] (logit), sh0 [N, 1, 3] and shN [N, K-1, 3]. It is loaded with `weights_only=True`: a model file from
elsewhere must never run code when opened.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import NoReturn

import torch
from torch import Tensor

from backend.core.errors import InputError
from backend.core.scene import GaussianScene, sh_degree_from_coeffs

_REQUIRED = ("means", "quats", "scales", "opacities")


def read_gsplat_checkpoint(path: str | os.PathLike[str], *, allow_nonfinite: bool = False) -> GaussianScene:
    """Read the Gaussians of a gsplat checkpoint into a `GaussianScene` on the CPU.

    NaN/Inf parameters are an error unless `allow_nonfinite` (rows are never dropped: indices must match the file).
    """
    path = Path(path)
    splats = _load_splats(path)
    missing = [key for key in _REQUIRED if key not in splats]
    if missing:
        raise InputError(
            f"{path}: 'splats' lacks {', '.join(missing)} (has {', '.join(sorted(splats)) or 'nothing'}); "
            f"give a checkpoint saved by gsplat's simple_trainer"
        )
    if "sh0" not in splats or "shN" not in splats:
        if "colors" in splats or "features" in splats:
            raise InputError(
                f"{path}: the model was trained with appearance optimisation ('colors'/'features' instead of SH "
                f"'sh0'/'shN'), which splatseg cannot render; retrain without --app_opt or export a PLY"
            )
        raise InputError(f"{path}: 'splats' lacks the SH colours 'sh0' and 'shN'; give a gsplat sh-mode checkpoint")

    tensors = {key: _float_tensor(path, key, splats[key]) for key in (*_REQUIRED, "sh0", "shN")}
    n = tensors["means"].shape[0]
    sh0, sh_n = tensors["sh0"], tensors["shN"]
    if sh0.ndim == 2:  # [N, 3]: some exporters drop the coefficient axis of the DC term
        sh0 = sh0[:, None, :]
    if sh_n.ndim == 2 and sh_n.shape[1] == 0:
        sh_n = sh_n.reshape(n, 0, 3)
    expected = {
        "means": (n, 3),
        "quats": (n, 4),
        "scales": (n, 3),
        "opacities": (n,),
        "sh0": (n, 1, 3),
    }
    got = {**tensors, "sh0": sh0, "shN": sh_n}
    for key, shape in expected.items():
        if tuple(got[key].shape) != shape:
            _bad_shape(path, key, got[key], str(list(shape)))
    if sh_n.ndim != 3 or sh_n.shape[0] != n or sh_n.shape[2] != 3:
        _bad_shape(path, "shN", sh_n, f"[{n}, K-1, 3]")
    try:
        sh_degree_from_coeffs(1 + sh_n.shape[1])
    except ValueError:
        _bad_shape(path, "shN", sh_n, "[N, K-1, 3] with K = 1, 4, 9 or 16")

    sh = torch.cat([sh0, sh_n], dim=1).contiguous()  # [N, K, 3]
    scene = GaussianScene(
        means=tensors["means"].contiguous(),
        quats=tensors["quats"].contiguous(),
        log_scales=tensors["scales"].contiguous(),
        logit_opacities=tensors["opacities"].contiguous(),
        sh=sh,
    )
    if not allow_nonfinite:
        _check_finite(path, {**tensors, "sh0": sh0, "shN": sh_n})
    return scene


def _load_splats(path: Path) -> dict[str, object]:
    if not path.is_file():
        raise InputError(f"{path}: no such file; give the path of a gsplat ckpt_*.pt checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise InputError(
                f"{path} holds Python objects other than tensors, which splatseg refuses to unpickle "
                f"(weights_only=True); re-save it with only tensors, e.g. "
                f"torch.save({{'splats': {{k: v.cpu() for k, v in splats.items()}}}}, path)"
            ) from None
        raise InputError(f"{path} is not a PyTorch checkpoint ({_first_line(e)}); give a gsplat ckpt_*.pt") from None
    except Exception as e:  # torch raises KeyError, EOFError, RuntimeError, … for files that are not checkpoints
        raise InputError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {_first_line(e)}); "
            f"give a gsplat ckpt_*.pt or copy it again if it was truncated"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("splats"), dict):
        keys = ", ".join(map(str, ckpt)) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise InputError(
            f"{path} has no 'splats' dictionary (found: {keys or 'an empty dict'}); give a checkpoint saved by "
            f"gsplat's simple_trainer (ckpts/ckpt_STEP_rank0.pt)"
        )
    return ckpt["splats"]


def _float_tensor(path: Path, key: str, value: object) -> Tensor:
    if not isinstance(value, Tensor) or not value.is_floating_point():
        kind = f"a {value.dtype} tensor" if isinstance(value, Tensor) else type(value).__name__
        raise InputError(f"{path}: splats[{key!r}] is {kind}, expected a float tensor; the checkpoint is damaged")
    return value.detach().to(torch.float32)


def _bad_shape(path: Path, key: str, value: Tensor, expected: str) -> NoReturn:
    raise InputError(
        f"{path}: splats[{key!r}] has shape {list(value.shape)}, expected {expected}; "
        f"the checkpoint is not a gsplat 3DGS model or is damaged"
    )


def _check_finite(path: Path, tensors: dict[str, Tensor]) -> None:
    n = tensors["means"].shape[0]
    bad_rows = torch.zeros(n, dtype=torch.bool)
    bad_keys = []
    for key, value in tensors.items():
        bad = ~torch.isfinite(value.reshape(n, -1)).all(dim=1)
        if bool(bad.any()):
            bad_keys.append(key)
            bad_rows |= bad
    if bad_keys:
        count = int(bad_rows.sum())
        first = int(bad_rows.nonzero()[0, 0])
        raise InputError(
            f"{path}: {count} of {n} Gaussians have NaN/Inf values (in {', '.join(bad_keys)}; first at index "
            f"{first}); fix or re-export the model (splatseg does not drop them, since selections index Gaussians "
            f"by position)"
        )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "no details"
