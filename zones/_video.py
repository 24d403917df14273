"""The ``video`` item type: registers the renderer factory (``zones._video_renderer``) with the
pools of mpv handles and one audio owner for all video zones.

Imported the first time a video item is prepared (``LAZY_RENDERERS``), so an image-only device
never loads libmpv; importing it registers ``video`` with the ``[video]`` settings given to
``zones.configure_renderer``.

Each presentation path has its own handles: in software they render with mpv's software render
API (``MpvOutput``, ``hwdec=no``); on the GL path (a renderer's ``RenderContext.gl``) with its
OpenGL render API in that context (``GLMpvOutput``, ``video.hwdec``), one pool per context,
emptied when the context closes.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable

from core import VideoConfig
from zones._api import RenderContext, register_renderer, renderer_config
from zones._gl import GLContext
from zones._mpv import MpvOutput, VideoOutput
from zones._mpv_gl import GLMpvOutput, GLVideoOutput, release_all
from zones._video_pool import AudioOwner, OutputFactory, VideoOutputPool
from zones._video_renderer import VideoRenderer

__all__ = ["VideoRenderer", "VideoRenderers", "configure", "configure_video"]

GLOutputFactory = Callable[[GLContext], VideoOutput]


def _attach(output: VideoOutput) -> None:
    if isinstance(output, GLVideoOutput):
        output.attach()


class VideoRenderers:
    """The ``video`` renderer factory: handle pools (software, and one per GL context) and the
    audio owner for all video zones."""

    def __init__(
        self,
        config: VideoConfig | None = None,
        *,
        output_factory: OutputFactory | None = None,
        gl_output_factory: GLOutputFactory | None = None,
    ) -> None:
        self.config = config or VideoConfig()
        self.pool = self._new_pool(output_factory or self._mpv_factory)
        self._gl_factory = gl_output_factory or self._mpv_gl_factory
        self._gl_pools: dict[GLContext, VideoOutputPool] = {}
        self.audio = AudioOwner()

    def _new_pool(self, factory: OutputFactory) -> VideoOutputPool:
        return VideoOutputPool(
            factory,
            spare=self.config.spare_handles,
            timeout_s=self.config.command_timeout_s,
            attach=_attach,
        )

    def _mpv_factory(self) -> VideoOutput:
        return MpvOutput(
            audio_output="auto" if self.config.audio else "null",
            audio_device=self.config.audio_device,
        )

    def _mpv_gl_factory(self, context: GLContext) -> VideoOutput:
        return GLMpvOutput(
            context,
            hwdec=self.config.hwdec,
            audio_output="auto" if self.config.audio else "null",
            audio_device=self.config.audio_device,
        )

    def pool_for(self, context: GLContext | None) -> VideoOutputPool:
        """The handles for a renderer drawing in ``context`` (None: in software)."""
        if context is None:
            return self.pool
        pool = self._gl_pools.get(context)
        if pool is None:
            pool = self._gl_pools[context] = self._new_pool(lambda: self._gl_factory(context))
            context.on_close(lambda: self._close_gl_pool(context))
        return pool

    def _close_gl_pool(self, context: GLContext) -> None:
        """The context is closing (on its thread): free the renderers mpv holds in it first,
        then terminate the handles."""
        pool = self._gl_pools.pop(context, None)
        release_all(context)
        if pool is not None:
            pool.close()

    @property
    def gl_pools(self) -> list[VideoOutputPool]:
        return list(self._gl_pools.values())

    def __call__(self, context: RenderContext) -> VideoRenderer:
        return VideoRenderer(
            context, pool=self.pool_for(context.gl), config=self.config, audio=self.audio
        )

    def close(self) -> bool:
        """Close the idle handles (at shutdown); False if some did not finish in time."""
        closed = self.pool.close()
        for context in list(self._gl_pools):
            if not context.closed:
                self._close_gl_pool(context)
        return closed


_registered: list[VideoRenderers] = []


@atexit.register
def _close_registered() -> None:
    """Terminate idle mpv handles before the interpreter tears down what they call back into."""
    while _registered:
        _registered.pop().close()


def configure_video(
    config: VideoConfig,
    *,
    output_factory: OutputFactory | None = None,
    gl_output_factory: GLOutputFactory | None = None,
) -> VideoRenderers:
    """Register a ``video`` factory built from ``config`` (the player calls this at start-up).

    The previously registered factory's idle handles are closed.
    """
    renderers = VideoRenderers(
        config, output_factory=output_factory, gl_output_factory=gl_output_factory
    )
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
