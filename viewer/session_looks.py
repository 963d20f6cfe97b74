"""What the clients show: colours per view mode (clusters, PCA, a text query's heat map), the look layers sent to
the browsers, and the selection's statistics; cached per setting, for `Session`."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from .looks import ViewMode, label_colors, pca_colors


@dataclasses.dataclass(frozen=True)
class SelectionStats:
    count: int
    bbox_min: np.ndarray | None  # [3]
    bbox_max: np.ndarray | None  # [3]


class SessionLooks:
    """Colour caches and look layers; `Session` holds the state they read (field, settings, selection, caches)."""

    # ---- what the clients show ---------------------------------------------------------------------------------
    def _level_or_default(self) -> Any:
        if self.settings.level is not None:
            return self.settings.level
        levels = list(getattr(self.field, "levels", ()) or ())
        return levels[0] if levels else None

    def _cluster_key(self) -> tuple[Any, ...]:
        if self.field is not None and self.field.uses_scale:
            return ("clusters", None, self.settings.scale)
        return ("clusters", self._level_or_default(), None)

    def _cluster_labels(self) -> np.ndarray:  # [N] int, -1 = none: segment-everything at the current granularity
        field = self._require_field()
        key = ("labels", *self._cluster_key()[1:])
        if key not in self._colors:
            if field.uses_scale:
                labels = field.cluster_labels(None, scale=self.settings.scale)
            else:
                labels = field.cluster_labels(self._level_or_default())
            self._colors[key] = np.asarray(to_numpy(labels)).reshape(-1)
        return self._colors[key]

    def _view_colors(self) -> tuple[np.ndarray | None, object]:
        if self._heat is not None and self.settings.view == "highlight":
            return self._heat, ("heat", self._heat_version)
        view = self.settings.view
        if view not in ("clusters", "pca") or self.field is None:
            return None, None
        if view == "clusters":
            key: object = self._cluster_key()
            if key not in self._colors:
                self._colors[key] = label_colors(self._cluster_labels())
        else:
            scale = self.settings.scale if self.field.uses_scale else None
            level = None if self.field.uses_scale else self._level_or_default()
            key = ("pca", level, scale)
            if key not in self._colors:
                with torch.no_grad():
                    self._colors[key] = pca_colors(self.field.gaussian_features(level=level, scale=scale))
        return self._colors[key], key

    def rgba(self) -> np.ndarray:  # [N, 4] uint8: the current look
        with self._lock:
            colors, colors_key = self._view_colors_safe()
            s = self.settings
            key = (self.selection.version, s.view, colors_key, s.dim_rest)
            if key != self._rgba_key or self._rgba is None:
                self._rgba = self._looks.rgba(
                    self._mode(), self.selection.mask, colors=colors, colors_key=colors_key, dim_rest=s.dim_rest
                )
                self._rgba_key = key
            return self._rgba

    def look_parts(self) -> tuple[Any, np.ndarray, np.ndarray]:  # (LookParts or [N, 4] uint8, plain, dimmed)
        """`look_layers` with a highlight look left as `LookParts` (made into an array only if a client asks)."""
        with self._lock:
            colors, colors_key = self._view_colors_safe()
            s = self.settings
            key = (self.selection.version, s.view, colors_key, s.dim_rest)
            if key != self._parts_key or self._parts is None:
                self._parts = self._looks.parts(
                    self._mode(), self.selection.mask, colors=colors, colors_key=colors_key, dim_rest=s.dim_rest
                )
                self._parts_key = key
            plain, dimmed = self._looks.layers(self._mode(), colors=colors, colors_key=colors_key)
            return self._parts, plain, dimmed

    @property
    def look_style(self):  # → looks.LookStyle
        return self._looks.style

    def look_layers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # (look, plain, dimmed), each [N, 4] uint8
        """The current look and the two per-chunk looks the browser keeps ready (`ChunkedSplats.update`)."""
        with self._lock:
            rgba = self.rgba()
            colors, colors_key = self._view_colors_safe()
            plain, dimmed = self._looks.layers(self._mode(), colors=colors, colors_key=colors_key)
            return rgba, plain, dimmed

    def tint_layer(self) -> np.ndarray:  # [N, 4] uint8: every Gaussian as it looks selected, in the current colouring
        """The third look the browser keeps ready (a chunk wholly inside a selection switches to it)."""
        with self._lock:
            colors, colors_key = self._view_colors_safe()
            return self._looks.tinted(self._mode(), colors=colors, colors_key=colors_key)

    def _view_colors_safe(self) -> tuple[np.ndarray | None, object]:
        try:
            return self._view_colors()
        except Exception as e:  # a broken field must not take the scene away: fall back to the scene's colours
            self.notify_all("Colouring failed", f"{type(e).__name__}: {e}", "red")
            self.settings.view = "highlight"
            return None, None

    def stats(self) -> SelectionStats:
        with self._lock:
            if self._stats_version != self.selection.version:
                mask = self.selection.mask
                count = int(mask.sum())
                if count:
                    pts = self._means_np[mask]
                    self._stats = SelectionStats(count, pts.min(0), pts.max(0))
                else:
                    self._stats = SelectionStats(0, None, None)
                self._stats_version = self.selection.version
            return self._stats

    def set_heat(self, colors: np.ndarray | None) -> None:
        """Show per-Gaussian colours [N, 3] uint8 (a relevancy heat map) instead of the scene's; None turns it off."""
        with self._lock:
            self._heat = None if colors is None else np.asarray(colors, dtype=np.uint8).reshape(len(self.scene), 3)
            self._heat_version += 1
        self._emit("look")

    def _mode(self) -> ViewMode:
        """The look mode: a heat map shows its colours the way the cluster and PCA views do."""
        if self._heat is not None and self.settings.view == "highlight":
            return "pca"
        return self.settings.view


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
