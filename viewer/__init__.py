"""The splatseg viewer: a viser app that turns browser events into backend calls (no numerics of its own).

`ViewerApp(scene).url` starts a viewer; `splatseg view` and `splatseg demo` are thin wrappers around it.
"""

from .app import ViewerApp as ViewerApp
from .session import Session as Session
from .session import Settings as Settings
from .splat_layers import LayeredSplats as LayeredSplats
from .splats import ChunkedSplats as ChunkedSplats
from .splats import SplatChunks as SplatChunks
