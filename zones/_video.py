"""The ``video`` item type: registers the renderer factory (``zones._video_renderer``) with one
pool of mpv handles and one audio owner for all video zones.

Imported the first time a video item is prepared (``LAZY_RENDERERS``), so an image-only device
never loads libmpv; importing it registers ``video`` with the ``[video]`` settings given to
``zones.configure_renderer``.
"""

from __future__ import annotations

import atexit

from core import VideoConfig
from zones._api import RenderContext, register_renderer, renderer_config
from zones._mpv import MpvOutput, VideoOutput
from zones._video_pool import AudioOwner, OutputFactory, VideoOutputPool
from zones._video_renderer import VideoRenderer

__all__ = ["VideoRenderer", "VideoRenderers", "configure", "configure_video"]


class VideoRenderers:
    """The ``video`` renderer factory: one handle pool and audio owner for all video zones."""

    def __init__(
        self, config: VideoConfig | None = None, *, output_factory: OutputFactory | None = None
    ) -> None:
        self.config = config or VideoConfig()
        if output_factory is None:
            output_factory = self._mpv_factory
        self.pool = VideoOutputPool(
            output_factory, spare=self.config.spare_handles, timeout_s=self.config.command_timeout_s
        )
        self.audio = AudioOwner()

    def _mpv_factory(self) -> VideoOutput:
        return MpvOutput(
            audio_output="auto" if self.config.audio else "null",
            audio_device=self.config.audio_device,
        )

    def __call__(self, context: RenderContext) -> VideoRenderer:
        return VideoRenderer(context, pool=self.pool, config=self.config, audio=self.audio)

    def close(self) -> bool:
        """Close the idle handles (at shutdown); False if some did not finish in time."""
        return self.pool.close()


_registered: list[VideoRenderers] = []


@atexit.register
def _close_registered() -> None:
    """Terminate idle mpv handles before the interpreter tears down what they call back into."""
    while _registered:
        _registered.pop().close()


def configure_video(
    config: VideoConfig, *, output_factory: OutputFactory | None = None
) -> VideoRenderers:
    """Register a ``video`` factory built from ``config`` (the player calls this at start-up).

    The previously registered factory's idle handles are closed.
    """
    renderers = VideoRenderers(config, output_factory=output_factory)
    register_renderer("video", renderers)
    while _registered:
        _registered.pop().close()
    _registered.append(renderers)
    return renderers


def configure(config: object) -> None:
    """``zones.configure_renderer("video", config)`` lands here once this module is loaded."""
    if not isinstance(config, VideoConfig):
        raise TypeError(f"video settings must be a VideoConfig, got {type(config).__name__}")
    configure_video(config)


configure(renderer_config("video") or VideoConfig())
