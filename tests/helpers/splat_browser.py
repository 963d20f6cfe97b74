"""A stand-in for viser's scene API that records splat nodes and frames, and what a browser would draw from them.

`add_gaussian_splats` packs exactly as viser does; `drawn_words` applies viser's client rule (a splat node is drawn
when it and every ancestor frame are visible: the scene tree's `effectiveVisibility`).
"""

from __future__ import annotations

import numpy as np


def viser_splat_buffer(centers, covariances, rgbs, opacities) -> np.ndarray:  # [N, 8] uint32
    """The buffer `viser.SceneApi.add_gaussian_splats` sends, packed as viser packs it (not as splatseg does)."""
    n = centers.shape[0]
    cov_triu = covariances.reshape((-1, 9))[:, np.array([0, 1, 2, 4, 5, 8])]
    return np.concatenate(
        [
            np.ascontiguousarray(centers, dtype=np.float32).view(np.uint8),
            np.zeros((n, 4), dtype=np.uint8),
            np.ascontiguousarray(cov_triu, dtype=np.float16).view(np.uint8),
            np.asarray(rgbs, dtype=np.uint8),
            np.asarray(opacities, dtype=np.uint8),
        ],
        axis=-1,
    ).view(np.uint32)


class RecordedNode:
    def __init__(self, api: RecordingSceneApi, name: str, buffer: np.ndarray | None, visible: bool) -> None:
        self.api = api
        self.name = name
        self.buffer = buffer
        self.visible = visible
        self.removed = False

    def __setattr__(self, name, value):
        if name in ("buffer", "visible") and hasattr(self, "removed"):
            self.api.messages += 1
            if name == "buffer":
                self.api.buffer_bytes += value.nbytes
        object.__setattr__(self, name, value)

    def remove(self) -> None:
        self.api.messages += 1
        object.__setattr__(self, "removed", True)
        for other in self.api.nodes.values():  # viser removes the subtree
            if other.name.startswith(self.name + "/"):
                object.__setattr__(other, "removed", True)


class RecordingSceneApi:
    """Packs exactly as `viser.SceneApi.add_gaussian_splats` does, without a server; counts messages."""

    def __init__(self) -> None:
        self.nodes: dict[str, RecordedNode] = {}
        self.messages = 0
        self.buffer_bytes = 0

    def add_frame(self, name, show_axes=True, *, visible=True, **_):
        self.messages += 1
        node = RecordedNode(self, name, None, visible)
        self.nodes[name] = node
        return node

    def add_gaussian_splats(self, name, centers, covariances, rgbs, opacities, visible=True, **_):
        buffer = viser_splat_buffer(centers, covariances, rgbs, opacities)
        self.messages += 1
        self.buffer_bytes += buffer.nbytes
        node = RecordedNode(self, name, buffer, visible)
        self.nodes[name] = node
        return node

    def effectively_visible(self, name: str) -> bool:
        parts = name.split("/")
        for k in range(2, len(parts) + 1):
            node = self.nodes.get("/".join(parts[:k]))
            if node is not None and (node.removed or not node.visible):
                return False
        node = self.nodes.get(name)
        return node is not None and not node.removed

    def drawn_nodes(self) -> list[np.ndarray]:
        """The buffers of the splat nodes the browser draws."""
        return [n.buffer for name, n in self.nodes.items() if n.buffer is not None and self.effectively_visible(name)]


def _keys(rows: np.ndarray) -> np.ndarray:  # [M, 8] uint32 → [M] the geometry words as one comparable value
    return np.ascontiguousarray(rows[:, :7]).view(np.dtype((np.void, 28))).reshape(-1)


def drawn_words(api: RecordingSceneApi, chunks) -> np.ndarray:  # → [N] uint32 in chunk order; 0 = nothing drawn
    """What the browser draws for each Gaussian: its RGBA word, or 0 where no drawn node holds it or its alpha is 0
    (a transparent Gaussian draws nothing, so both are the same picture). Each drawn row is found by its geometry
    (centre and covariance), so nodes may hold any set of Gaussians; one drawn twice fails."""
    geometry = _keys(chunks.geometry)
    order = np.argsort(geometry)
    words = np.zeros(chunks.num_gaussians, np.uint32)
    seen = np.zeros(chunks.num_gaussians, bool)
    for buffer in api.drawn_nodes():
        keys = _keys(buffer)
        pos = order[np.minimum(np.searchsorted(geometry[order], keys), len(order) - 1)]
        assert (geometry[pos] == keys).all(), "a drawn node holds a Gaussian the scene does not have"
        assert not seen[pos].any(), "a Gaussian is drawn twice"
        seen[pos] = True
        words[pos] = buffer[:, 7]
    words[(words >> 24) == 0] = 0
    return words


def expected_words(look: np.ndarray, chunks) -> np.ndarray:  # [N, 4] uint8 → [N] uint32 in chunk order
    words = np.ascontiguousarray(look, dtype=np.uint8).view(np.uint32).reshape(-1)[chunks.order].copy()
    words[(words >> 24) == 0] = 0
    return words
