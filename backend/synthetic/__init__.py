"""Procedural 3DGS scenes whose segmentation is known, at two levels (objects and parts): `scene` (the type and the
palette), `shapes` (analytic surfaces), the presets `tabletop` and `shelf`, `cameras` (orbit views) and `writer`
(the scene folder). The mask noise models that degrade their label maps live in `backend/masks/` (noise,
sam_like), beside the other mask sources."""

from .cameras import orbit_cameras
from .presets import PRESETS
from .scene import GENERATOR, PALETTE, SyntheticScene
from .tabletop import DEFAULT_NUM_GAUSSIANS, TABLE_HEIGHT, build_tabletop
from .writer import label_map, one_hot_labels, write_synthetic_scene

__all__ = [
    "DEFAULT_NUM_GAUSSIANS",
    "GENERATOR",
    "PALETTE",
    "PRESETS",
    "TABLE_HEIGHT",
    "SyntheticScene",
    "build_tabletop",
    "label_map",
    "one_hot_labels",
    "orbit_cameras",
    "write_synthetic_scene",
]
