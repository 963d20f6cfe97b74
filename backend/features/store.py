"""Where trained features live in the workspace, and how they are written and read (safetensors, never pickle).

`features/click.safetensors`: `features` [N, 24] (unit coarse half ⊕ unit fine half), per level `<level>_labels`
[N] int32 (global cluster of each Gaussian, -1 = none) and `<level>_centroids` [C, D], `neighbors` [N, k] int32.
`features/saga.safetensors`: `features` [N, 32] unit, `gate_weight` [32, 1], `gate_bias` [32], `quantiles` [Q]
(3D scale at evenly spaced quantiles of the training masks' scales), `neighbors`.
Both are recorded in the manifest with the model file and the masks' index as inputs, so a retrained model or
re-prepared masks make them stale.
"""

from __future__ import annotations

from torch import Tensor

from ..core.errors import SplatsegError
from ..workspace import Workspace
from .method import method_class, method_names


def features_name(method: str) -> str:
    method_class(method)  # SplatsegError for an unknown name
    return f"features/{method}.safetensors"


def trained_methods(workspace: Workspace) -> list[str]:
    """Methods whose features are recorded in the workspace, most recently trained first."""
    found = []
    for method in method_names():
        path = workspace.path(features_name(method))
        if workspace.entry(features_name(method)) is not None and path.exists():
            found.append((path.stat().st_mtime_ns, method))  # the manifest's time has only second resolution
    return [m for _, m in sorted(found, reverse=True)]


def read_features(workspace: Workspace, method: str, *, inputs: dict | None = None) -> dict[str, Tensor]:
    """The tensors of a trained method, after checking they are fresh (`StaleCacheError` otherwise)."""
    name = features_name(method)
    if workspace.entry(name) is None or not workspace.path(name).exists():
        raise SplatsegError(
            f"no {method} features in the workspace {workspace.root}; run "
            f"`splatseg train {workspace.scene_dir} --method {method}` first"
        )
    workspace.check_fresh(name, inputs=inputs)
    return workspace.load_tensors(name, verify=False)
