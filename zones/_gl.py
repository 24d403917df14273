"""OpenGL through ctypes: the few entry points the GL path uses, resolved by SDL.

Why not a binding package: moderngl needs OpenGL 3.3 core, which a Raspberry Pi's V3D (OpenGL
ES 3.1, desktop GL 3.1 at most) does not offer; PyOpenGL picks its function loader by platform
(GLX, EGL) at import time, while SDL chooses GLX, EGL or KMSDRM's EGL when the window opens, and
every call goes through several Python layers. ``SDL_GL_GetProcAddress`` of the very SDL that
pygame-ce loaded returns the entry points of the context SDL made, whatever the platform, and
a ctypes call costs about a microsecond. The same resolver is what mpv's OpenGL render API asks
for (``get_proc_address``). Nothing to install: ctypes is in the standard library on every
architecture (aarch64 included).

``GLContext`` is the process's one context (pygame has a single window): it is made by opening
a pygame ``OPENGL`` window, visible (``zones._gl_display.GLWindow``) or hidden (offscreen
targets for several players in one process).
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pygame

from core import PlayerError

log = logging.getLogger(__name__)

# Enumerants (from the Khronos headers; equal in OpenGL ES and desktop OpenGL).
VENDOR, RENDERER, VERSION, SHADING_LANGUAGE_VERSION = 0x1F00, 0x1F01, 0x1F02, 0x8B8C
NO_ERROR = 0
TEXTURE_2D, TEXTURE0 = 0x0DE1, 0x84C0
TEXTURE_MIN_FILTER, TEXTURE_MAG_FILTER = 0x2801, 0x2800
TEXTURE_WRAP_S, TEXTURE_WRAP_T = 0x2802, 0x2803
NEAREST, LINEAR, CLAMP_TO_EDGE = 0x2600, 0x2601, 0x812F
RGBA, UNSIGNED_BYTE, FLOAT = 0x1908, 0x1401, 0x1406
UNPACK_ALIGNMENT, PACK_ALIGNMENT = 0x0CF5, 0x0D05
UNPACK_ROW_LENGTH, UNPACK_SKIP_ROWS, UNPACK_SKIP_PIXELS = 0x0CF2, 0x0CF3, 0x0CF4
VERTEX_SHADER, FRAGMENT_SHADER = 0x8B31, 0x8B30
COMPILE_STATUS, LINK_STATUS = 0x8B81, 0x8B82
ARRAY_BUFFER, STATIC_DRAW = 0x8892, 0x88E4
TRIANGLE_STRIP = 0x0005
BLEND, SCISSOR_TEST, DEPTH_TEST, CULL_FACE, DITHER = 0x0BE2, 0x0C11, 0x0B71, 0x0B44, 0x0BD0
SRC_ALPHA, ONE_MINUS_SRC_ALPHA, ONE = 0x0302, 0x0303, 1
COLOR_BUFFER_BIT = 0x4000
FRAMEBUFFER, COLOR_ATTACHMENT0, FRAMEBUFFER_COMPLETE = 0x8D40, 0x8CE0, 0x8CD5
FRAMEBUFFER_BINDING = 0x8CA6
MAX_TEXTURE_SIZE = 0x0D33

_u, _i, _f, _p = ctypes.c_uint, ctypes.c_int, ctypes.c_float, ctypes.c_void_p
_UP = ctypes.POINTER(ctypes.c_uint)
_IP = ctypes.POINTER(ctypes.c_int)
_S = ctypes.c_char_p

# name: (result, argument types). Only what the compositor and the displays call.
_SIGNATURES: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "glGetString": (_S, (_u,)),
    "glGetIntegerv": (None, (_u, _IP)),
    "glGetError": (_u, ()),
    "glViewport": (None, (_i, _i, _i, _i)),
    "glScissor": (None, (_i, _i, _i, _i)),
    "glClearColor": (None, (_f, _f, _f, _f)),
    "glClear": (None, (_u,)),
    "glEnable": (None, (_u,)),
    "glDisable": (None, (_u,)),
    "glBlendFuncSeparate": (None, (_u, _u, _u, _u)),
    "glGenTextures": (None, (_i, _UP)),
    "glDeleteTextures": (None, (_i, _UP)),
    "glBindTexture": (None, (_u, _u)),
    "glActiveTexture": (None, (_u,)),
    "glTexParameteri": (None, (_u, _u, _i)),
    "glTexImage2D": (None, (_u, _i, _i, _i, _i, _i, _u, _u, _p)),
    "glTexSubImage2D": (None, (_u, _i, _i, _i, _i, _i, _u, _u, _p)),
    "glPixelStorei": (None, (_u, _i)),
    "glReadPixels": (None, (_i, _i, _i, _i, _u, _u, _p)),
    "glCreateShader": (_u, (_u,)),
    "glShaderSource": (None, (_u, _i, ctypes.POINTER(_S), _IP)),
    "glCompileShader": (None, (_u,)),
    "glGetShaderiv": (None, (_u, _u, _IP)),
    "glGetShaderInfoLog": (None, (_u, _i, _IP, _S)),
    "glDeleteShader": (None, (_u,)),
    "glCreateProgram": (_u, ()),
    "glAttachShader": (None, (_u, _u)),
    "glBindAttribLocation": (None, (_u, _u, _S)),
    "glLinkProgram": (None, (_u,)),
    "glGetProgramiv": (None, (_u, _u, _IP)),
    "glGetProgramInfoLog": (None, (_u, _i, _IP, _S)),
    "glUseProgram": (None, (_u,)),
    "glDeleteProgram": (None, (_u,)),
    "glGetUniformLocation": (_i, (_u, _S)),
    "glUniform1i": (None, (_i, _i)),
    "glUniform1f": (None, (_i, _f)),
    "glUniform4f": (None, (_i, _f, _f, _f, _f)),
    "glUniformMatrix3fv": (None, (_i, _i, ctypes.c_ubyte, ctypes.POINTER(_f))),
    "glGenBuffers": (None, (_i, _UP)),
    "glDeleteBuffers": (None, (_i, _UP)),
    "glBindBuffer": (None, (_u, _u)),
    "glBufferData": (None, (_u, ctypes.c_ssize_t, _p, _u)),
    "glVertexAttribPointer": (None, (_u, _i, _u, ctypes.c_ubyte, _i, _p)),
    "glEnableVertexAttribArray": (None, (_u,)),
    "glDrawArrays": (None, (_u, _i, _i)),
    "glGenFramebuffers": (None, (_i, _UP)),
    "glDeleteFramebuffers": (None, (_i, _UP)),
    "glBindFramebuffer": (None, (_u, _u)),
    "glFramebufferTexture2D": (None, (_u, _u, _u, _u, _i)),
    "glCheckFramebufferStatus": (_u, (_u,)),
    "glFinish": (None, ()),
    "glFlush": (None, ()),
}

_SOFTWARE_RASTERISERS = re.compile(
    r"llvmpipe|softpipe|swrast|software rasterizer|swiftshader", re.I
)


def sdl_library() -> ctypes.CDLL:
    """The SDL 2 library that holds pygame's GL context, found in this process's maps.

    pygame-ce's wheel bundles its own SDL, and libmpv loads the system's: the one with a
    current GL context is pygame's. Opening a loaded path again returns that library.
    """
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError as exc:
        raise PlayerError(f"cannot locate SDL in this process: {exc}") from exc
    paths = {line.split(maxsplit=5)[-1] for line in maps.splitlines() if line.count(" ") >= 5}
    for path in sorted(p for p in paths if re.match(r"libSDL2[-.]", Path(p).name)):
        library = ctypes.CDLL(path)
        library.SDL_GL_GetCurrentContext.restype = ctypes.c_void_p
        if not library.SDL_GL_GetCurrentContext():
            continue
        library.SDL_GL_GetProcAddress.restype = ctypes.c_void_p
        library.SDL_GL_GetProcAddress.argtypes = [ctypes.c_char_p]
        library.SDL_GL_SetSwapInterval.argtypes = [ctypes.c_int]
        library.SDL_GetError.restype = ctypes.c_char_p
        return library
    raise PlayerError("no SDL library in this process has a current OpenGL context")


class GL:
    """The entry points of ``_SIGNATURES`` as attributes (``gl.glClear(...)``)."""

    def __init__(self, get_proc_address: Callable[[bytes], int]) -> None:
        missing = []
        for name, (result, arguments) in _SIGNATURES.items():
            address = get_proc_address(name.encode())
            if not address:
                missing.append(name)
                continue
            setattr(self, name, ctypes.CFUNCTYPE(result, *arguments)(address))
        if missing:
            raise PlayerError(f"the OpenGL driver lacks {', '.join(missing)}")

    def __getattr__(self, name: str) -> Any:  # for mypy: the entry points are set above
        raise AttributeError(name)

    def check(self, what: str) -> None:
        """Raise when the driver recorded an error (used after set-up, not per frame)."""
        error = self.glGetError()
        if error != NO_ERROR:
            raise PlayerError(f"OpenGL error 0x{error:04x} while {what}")


@dataclass(frozen=True)
class GLInfo:
    """What the driver says about itself, and the shading-language dialect to use with it."""

    vendor: str
    renderer: str
    version: str
    shading_language: str
    es: bool  # OpenGL ES (else desktop OpenGL)
    major: int
    minor: int

    @property
    def software(self) -> bool:
        """A software rasteriser (Mesa llvmpipe...): GL that runs on the CPU."""
        return bool(_SOFTWARE_RASTERISERS.search(self.renderer))

    @property
    def glsl_version(self) -> str:
        """The ``#version`` line of the shaders: GLSL ES 3.00 / 1.00, or GLSL 1.30."""
        if self.es:
            return "300 es" if self.major >= 3 else "100"
        return "130"

    @property
    def row_length(self) -> bool:
        """``GL_UNPACK_ROW_LENGTH`` exists (ES 3.0, desktop GL): sub-rectangles upload in place."""
        return not self.es or self.major >= 3

    def describe(self) -> str:
        kind = "software rasteriser" if self.software else "hardware"
        return f"{self.renderer} ({self.version}; {self.vendor}; {kind})"

    @classmethod
    def read(cls, gl: GL) -> GLInfo:
        def text(name: int) -> str:
            value = gl.glGetString(name)
            return value.decode(errors="replace") if value else ""

        version = text(VERSION)
        match = re.search(r"(\d+)\.(\d+)", version)
        major, minor = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        return cls(
            vendor=text(VENDOR),
            renderer=text(RENDERER),
            version=version,
            shading_language=text(SHADING_LANGUAGE_VERSION),
            es="OpenGL ES" in version,
            major=major,
            minor=minor,
        )

    def usable(self) -> str | None:
        """Why this context is too old for the GL path, or None when it will do."""
        if self.es and self.major >= 2:
            return None
        if not self.es and self.major >= 3:
            return None
        return f"OpenGL {self.version or '(unknown version)'} is too old (needs ES 2.0 or 3.0)"


class Deletable(Protocol):
    def delete(self) -> None: ...


# Context requests, best first: OpenGL ES 3.0 (a Pi's V3D gives 3.1, Mesa 3.2), ES 2.0 (older
# GPUs), then whatever desktop OpenGL the driver has (3.0 or later is needed).
_REQUESTS: list[tuple[str, int, int]] = [("es", 3, 0), ("es", 2, 0), ("desktop", 0, 0)]


class GLContext:
    """The process's OpenGL context, made current on the main thread by SDL."""

    current: GLContext | None = None

    def __init__(self, sdl: ctypes.CDLL, vsync: bool) -> None:
        self._sdl = sdl
        self.gl = GL(self.get_proc_address)
        self.info = GLInfo.read(self.gl)
        self.vsync = vsync
        self.users = 0
        self.closed = False
        self.resources: dict[str, object] = {}  # per-context objects (the quad program...)
        self._doomed: deque[Deletable] = deque()
        self.freed = 0  # GL objects deleted through ``doom`` so far

    def doom(self, thing: Deletable) -> None:
        """Delete ``thing`` (a texture, a framebuffer) at the next ``collect``. For finalizers:
        they may run on any thread, and GL calls belong on the one where the context is
        current."""
        self._doomed.append(thing)

    def collect(self) -> None:
        """Delete what was doomed (on the context's thread, before drawing a frame)."""
        if not self._doomed or self.closed:
            return
        # Mesa (llvmpipe at least) frees a deleted texture that recent frames sampled only
        # when the context is idle: without this, 5.5 MB stayed allocated per photo switch.
        # Only frames after a release pay for the wait.
        self.gl.glFinish()
        while self._doomed:
            self._doomed.popleft().delete()
            self.freed += 1

    def get_proc_address(self, name: bytes) -> int:
        """An entry point of this context (what mpv's ``opengl_init_params`` asks for)."""
        return int(self._sdl.SDL_GL_GetProcAddress(name) or 0)

    @classmethod
    def open(cls, set_mode: Callable[[int], pygame.Surface], flags: int) -> GLContext:
        """Open the window with ``set_mode(flags | OPENGL)``, trying ES 3.0, ES 2.0, desktop.

        Raises ``PlayerError`` with every attempt's reason when none gives a usable context.
        """
        if cls.current is not None and not cls.current.closed:
            raise PlayerError("an OpenGL context is already open in this process")
        reasons = []
        for api, major, minor in _REQUESTS:
            _request(api, major, minor)
            try:
                set_mode(flags | pygame.OPENGL | pygame.DOUBLEBUF)
            except pygame.error as exc:
                reasons.append(f"{api} {major}.{minor}: {exc}")
                continue
            sdl = sdl_library()
            vsync = sdl.SDL_GL_SetSwapInterval(1) == 0
            context = cls(sdl, vsync)
            problem = context.info.usable()
            if problem is not None:
                reasons.append(problem)
                continue
            if not vsync:
                reason = (sdl.SDL_GetError() or b"").decode(errors="replace")
                log.warning(
                    "no vsync: presented frames are not paced by the display",
                    extra={"fields": {"reason": reason, "renderer": context.info.renderer}},
                )
            cls.current = context
            return context
        raise PlayerError("no usable OpenGL context: " + "; ".join(reasons))

    def close(self) -> None:
        self.closed = True
        self.resources.clear()
        self._doomed.clear()  # the context's objects go with it
        if GLContext.current is self:
            GLContext.current = None


def _request(api: str, major: int, minor: int) -> None:
    set_attribute = pygame.display.gl_set_attribute
    if api == "es":
        set_attribute(pygame.GL_CONTEXT_PROFILE_MASK, pygame.GL_CONTEXT_PROFILE_ES)
        set_attribute(pygame.GL_CONTEXT_MAJOR_VERSION, major)
        set_attribute(pygame.GL_CONTEXT_MINOR_VERSION, minor)
    else:
        set_attribute(pygame.GL_CONTEXT_PROFILE_MASK, 0)  # SDL's default: compatibility
        set_attribute(pygame.GL_CONTEXT_MAJOR_VERSION, 2)
        set_attribute(pygame.GL_CONTEXT_MINOR_VERSION, 1)
    for attribute in (pygame.GL_RED_SIZE, pygame.GL_GREEN_SIZE, pygame.GL_BLUE_SIZE):
        set_attribute(attribute, 8)  # never a 16-bit config: gradients would band
    set_attribute(pygame.GL_DEPTH_SIZE, 0)  # 2D only: no depth or stencil memory
    set_attribute(pygame.GL_STENCIL_SIZE, 0)
