"""Where to look from when a scene has no cameras: its content, its up axis, and orbit cameras around it."""

from .bounds import ContentBounds as ContentBounds
from .bounds import content_bounds as content_bounds
from .orbit import orbit_cameras as orbit_cameras
from .up import estimate_up as estimate_up
from .up import up_from_cameras as up_from_cameras
