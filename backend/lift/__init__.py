"""SA3D-style segmentation without training: a 2D predictor's masks lifted onto the Gaussians, view after view.

The public surface; the modules hold one concern each: `predictor` (SAM and ground-truth mask predictors),
`lifting` (SA3D's projection loss in closed form), `views` (which view next), `self_prompt` (the loop).
"""

from .lifting import GeometryCache as GeometryCache
from .lifting import MaskLifter as MaskLifter
from .lifting import ViewGeometry as ViewGeometry
from .lifting import lift_masks as lift_masks
from .lifting import view_evidence as view_evidence
from .lifting import view_geometry as view_geometry
from .predictor import GroundTruthPredictor as GroundTruthPredictor
from .predictor import MaskPredictor as MaskPredictor
from .predictor import SamPredictorAdapter as SamPredictorAdapter
from .predictor import choose_by_granularity as choose_by_granularity
from .self_prompt import Sa3dOptions as Sa3dOptions
from .self_prompt import Sa3dResult as Sa3dResult
from .self_prompt import ViewStep as ViewStep
from .self_prompt import prompt_points as prompt_points
from .self_prompt import scene_images as scene_images
from .self_prompt import segment_sa3d as segment_sa3d
from .views import next_view as next_view
