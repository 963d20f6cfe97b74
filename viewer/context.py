"""What a `ClientView` may use of the app, and nothing more: the app builds one per browser, and a view never
imports the app (so the view can be built and tested without a server).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .sa3d_panel import Sa3dRunner
    from .server_frames import ServerFrames
    from .session import Session
    from .splats import SplatChunks
    from .text_panel import TextIndexLoader


@dataclasses.dataclass
class ClientContext:
    session: Session
    is_connected: Callable[[int], bool]
    """Client id → whether the server still holds that browser (a view left while it was built is dropped)."""
    chunks: SplatChunks | None = None
    server_frames: ServerFrames | None = None
    """Set when the server renders frames itself (large scenes); the browser then gets no splats."""
    share_url: str | None = None
    text_index: TextIndexLoader | None = None
    sa3d_runner: Sa3dRunner | None = None
    start_prepare: Callable[[str], None] | None = None
    """who → start preparing masks in the background."""
    start_train: Callable[[str, str], None] | None = None
    """who, method name → start training features in the background."""
