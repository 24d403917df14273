"""Drawing on the GL path: one shader program for textured and solid quads, textures that take
damaged rectangles of pygame surfaces, framebuffers read back as surfaces.

One shader source serves every context: GLSL ES 3.00 on OpenGL ES 3.x (a Pi 4/5's V3D, Mesa),
GLSL ES 1.00 on ES 2.0, GLSL 1.30 on desktop OpenGL; a few macros bridge the spellings. Quads
are placed in canvas pixels and mapped to the target by one 3x3 matrix (letterbox, scale,
rotation, the target's y direction): moving a picture to a rotated or scaled screen costs the
GPU nothing more than drawing it.
"""

from __future__ import annotations

import ctypes
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import pygame

from core import PlayerError
from zones import _gl as g
from zones._geometry import Rotation, rotated_size

Matrix = tuple[float, ...]  # 3x3, column-major (what glUniformMatrix3fv takes)
Colour = tuple[float, float, float, float]

_VERTEX = """
ATTRIBUTE vec2 a_corner;
uniform vec4 u_rect;        // x, y, w, h in canvas pixels
uniform mat3 u_transform;   // canvas pixels -> clip space
VARYING_OUT vec2 v_uv;
void main() {
    v_uv = a_corner;        // texture row 0 (t = 0) is the top of the picture
    vec3 p = u_transform * vec3(u_rect.xy + a_corner * u_rect.zw, 1.0);
    gl_Position = vec4(p.xy, 0.0, 1.0);
}
"""

_FRAGMENT = """
VARYING_IN vec2 v_uv;
uniform sampler2D u_texture;
uniform vec4 u_colour;      // used instead of the texture when u_solid is 1
uniform float u_solid;
uniform float u_swizzle;    // 1: the texture holds pygame's B, G, R, A byte order
uniform float u_opaque;     // 1: ignore the texture's alpha (surfaces without SRCALPHA)
uniform float u_alpha;      // the layer's opacity (fades)
void main() {
    vec4 t = TEXTURE(u_texture, v_uv);
    t = mix(t, t.bgra, u_swizzle);
    t.a = mix(t.a, 1.0, u_opaque);
    t = mix(t, u_colour, u_solid);
    FRAG_COLOUR = vec4(t.rgb, t.a * u_alpha);
}
"""

_PRECISION = """
#ifdef GL_FRAGMENT_PRECISION_HIGH
precision highp float;
#else
precision mediump float;
#endif
"""


def _prelude(info: g.GLInfo, stage: int) -> str:
    version = f"#version {info.glsl_version}\n"
    if info.glsl_version == "100":
        body = (
            "#define ATTRIBUTE attribute\n#define VARYING_OUT varying\n"
            "#define VARYING_IN varying\n#define TEXTURE texture2D\n"
            "#define FRAG_COLOUR gl_FragColor\n"
        )
    else:
        body = (
            "#define ATTRIBUTE in\n#define VARYING_OUT out\n#define VARYING_IN in\n"
            "#define TEXTURE texture\n#define FRAG_COLOUR o_colour\n"
        )
        if stage == g.FRAGMENT_SHADER:
            body += "out vec4 o_colour;\n"
    precision = _PRECISION if stage == g.FRAGMENT_SHADER else ""
    return version + precision + body


def _compile(gl: g.GL, info: g.GLInfo, stage: int, source: str) -> int:
    shader = gl.glCreateShader(stage)
    text = (_prelude(info, stage) + source).encode()
    gl.glShaderSource(shader, 1, (ctypes.c_char_p * 1)(text), None)
    gl.glCompileShader(shader)
    status = ctypes.c_int()
    gl.glGetShaderiv(shader, g.COMPILE_STATUS, ctypes.byref(status))
    if not status.value:
        log = ctypes.create_string_buffer(4096)
        gl.glGetShaderInfoLog(shader, 4096, None, log)
        gl.glDeleteShader(shader)
        raise PlayerError(f"shader does not compile on {info.renderer}: {log.value.decode()}")
    return int(shader)


class QuadProgram:
    """The compositor's shader program and its unit quad; one per context."""

    def __init__(self, context: g.GLContext) -> None:
        gl, info = context.gl, context.info
        self.gl = gl
        vertex = _compile(gl, info, g.VERTEX_SHADER, _VERTEX)
        fragment = _compile(gl, info, g.FRAGMENT_SHADER, _FRAGMENT)
        program = gl.glCreateProgram()
        gl.glAttachShader(program, vertex)
        gl.glAttachShader(program, fragment)
        gl.glBindAttribLocation(program, 0, b"a_corner")
        gl.glLinkProgram(program)
        gl.glDeleteShader(vertex)
        gl.glDeleteShader(fragment)
        status = ctypes.c_int()
        gl.glGetProgramiv(program, g.LINK_STATUS, ctypes.byref(status))
        if not status.value:
            log = ctypes.create_string_buffer(4096)
            gl.glGetProgramInfoLog(program, 4096, None, log)
            raise PlayerError(f"shader program does not link: {log.value.decode()}")
        self.program = int(program)
        self._filter = g.LINEAR
        self._blending = True
        self._uniforms = {
            name: gl.glGetUniformLocation(program, name.encode())
            for name in (
                "u_rect",
                "u_transform",
                "u_texture",
                "u_colour",
                "u_solid",
                "u_swizzle",
                "u_opaque",
                "u_alpha",
            )
        }
        buffer = ctypes.c_uint()
        gl.glGenBuffers(1, ctypes.byref(buffer))
        self.buffer = buffer.value
        corners = (ctypes.c_float * 8)(0, 0, 1, 0, 0, 1, 1, 1)  # a triangle strip
        gl.glBindBuffer(g.ARRAY_BUFFER, self.buffer)
        gl.glBufferData(g.ARRAY_BUFFER, ctypes.sizeof(corners), corners, g.STATIC_DRAW)
        gl.check("building the quad program")

    def begin(
        self, framebuffer: int, size: tuple[int, int], transform: Matrix, *, exact: bool = False
    ) -> None:
        """Set every piece of state the draws rely on (a renderer drawing into its own
        framebuffer, such as mpv, may have changed any of it). ``exact``: canvas pixels land
        on target pixels one to one (no scaling), so textures are sampled without filtering,
        which a software rasteriser does several times faster."""
        gl = self.gl
        self._filter = g.NEAREST if exact else g.LINEAR
        self._blending = True
        gl.glBindFramebuffer(g.FRAMEBUFFER, framebuffer)
        gl.glViewport(0, 0, size[0], size[1])
        for capability in (g.SCISSOR_TEST, g.DEPTH_TEST, g.CULL_FACE, g.DITHER):
            gl.glDisable(capability)
        gl.glEnable(g.BLEND)
        gl.glBlendFuncSeparate(g.SRC_ALPHA, g.ONE_MINUS_SRC_ALPHA, g.ONE, g.ONE_MINUS_SRC_ALPHA)
        gl.glUseProgram(self.program)
        gl.glBindBuffer(g.ARRAY_BUFFER, self.buffer)
        gl.glEnableVertexAttribArray(0)
        gl.glVertexAttribPointer(0, 2, g.FLOAT, 0, 0, None)
        gl.glActiveTexture(g.TEXTURE0)
        gl.glUniform1i(self._uniforms["u_texture"], 0)
        gl.glUniformMatrix3fv(self._uniforms["u_transform"], 1, 0, (ctypes.c_float * 9)(*transform))

    def clear(self, colour: Colour) -> None:
        self.gl.glClearColor(*colour)
        self.gl.glClear(g.COLOR_BUFFER_BIT)

    def _blend(self, needed: bool) -> None:
        """Blending only where something shows through: an opaque copy costs a software
        rasteriser a read of the target per pixel less."""
        if needed != self._blending:
            (self.gl.glEnable if needed else self.gl.glDisable)(g.BLEND)
            self._blending = needed

    def fill(self, rect: Sequence[float], colour: Colour) -> None:
        u, gl = self._uniforms, self.gl
        self._blend(colour[3] < 1.0)
        gl.glUniform4f(u["u_rect"], *rect)
        gl.glUniform4f(u["u_colour"], *colour)
        gl.glUniform1f(u["u_solid"], 1.0)
        gl.glUniform1f(u["u_alpha"], 1.0)
        gl.glDrawArrays(g.TRIANGLE_STRIP, 0, 4)

    def draw(
        self,
        texture: int,
        rect: Sequence[float],
        *,
        alpha: float = 1.0,
        swizzle: bool = True,
        opaque: bool = True,
    ) -> None:
        u, gl = self._uniforms, self.gl
        self._blend(alpha < 1.0 or not opaque)
        gl.glBindTexture(g.TEXTURE_2D, texture)
        gl.glTexParameteri(g.TEXTURE_2D, g.TEXTURE_MIN_FILTER, self._filter)
        gl.glTexParameteri(g.TEXTURE_2D, g.TEXTURE_MAG_FILTER, self._filter)
        gl.glUniform4f(u["u_rect"], *rect)
        gl.glUniform1f(u["u_solid"], 0.0)
        gl.glUniform1f(u["u_swizzle"], 1.0 if swizzle else 0.0)
        gl.glUniform1f(u["u_opaque"], 1.0 if opaque else 0.0)
        gl.glUniform1f(u["u_alpha"], alpha)
        gl.glDrawArrays(g.TRIANGLE_STRIP, 0, 4)


def program_of(context: g.GLContext) -> QuadProgram:
    program = context.resources.get("quad")
    if not isinstance(program, QuadProgram):
        program = context.resources["quad"] = QuadProgram(context)
    return program


def exact(canvas: tuple[int, int], target: tuple[int, int], rotation: Rotation) -> bool:
    """The canvas maps onto the target one pixel to one pixel (``transform``'s scale is 1)."""
    lw, lh = rotated_size(target, rotation)
    return min(lw / canvas[0], lh / canvas[1]) == 1.0


def transform(
    canvas: tuple[int, int], target: tuple[int, int], rotation: Rotation, *, flip_y: bool
) -> Matrix:
    """Canvas pixels to clip space on a ``target``-sized (physical) framebuffer.

    The canvas is scaled uniformly into the target's logical (rotated) size and centred
    (letterbox), then turned clockwise by ``rotation``; ``flip_y`` for a window (GL's origin
    is bottom-left there), not for a framebuffer that is read back row 0 first.
    """
    cw, ch = canvas
    lw, lh = rotated_size(target, rotation)
    scale = min(lw / cw, lh / ch)
    ox, oy = (lw - cw * scale) / 2, (lh - ch * scale) / 2
    if scale == 1.0:  # pixel-exact placement, as the software display does
        ox, oy = math.floor(ox), math.floor(oy)
    # logical = scale * canvas + offset
    m = [[scale, 0.0, ox], [0.0, scale, oy], [0.0, 0.0, 1.0]]
    # physical from logical, turned clockwise
    turn = {
        0: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
        90: [[0.0, -1.0, lh], [1.0, 0.0, 0.0]],
        180: [[-1.0, 0.0, lw], [0.0, -1.0, lh]],
        270: [[0.0, 1.0, 0.0], [-1.0, 0.0, lw]],
    }[rotation]
    m = _multiply([*turn, [0.0, 0.0, 1.0]], m)
    pw, ph = target
    sy = -2.0 / ph if flip_y else 2.0 / ph
    clip = [[2.0 / pw, 0.0, -1.0], [0.0, sy, 1.0 if flip_y else -1.0], [0.0, 0.0, 1.0]]
    m = _multiply(clip, m)
    return tuple(m[row][col] for col in range(3) for row in range(3))


def _multiply(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    return [[sum(a[r][k] * b[k][c] for k in range(3)) for c in range(3)] for r in range(3)]


def byte_order(surface: pygame.Surface) -> bool | None:
    """True for pygame's usual B, G, R, (A) bytes, False for R, G, B, (A); None: another
    format (16 or 24 bits), which is converted before upload."""
    if surface.get_bytesize() != 4:
        return None
    masks = surface.get_masks()[:3]
    if masks == (0xFF0000, 0xFF00, 0xFF):
        return True
    if masks == (0xFF, 0xFF00, 0xFF0000):
        return False
    return None


class Texture:
    """A GL texture the size of a surface, refreshed one damaged rectangle at a time."""

    def __init__(self, context: g.GLContext, size: tuple[int, int]) -> None:
        self.context = context
        self.size = size
        gl = context.gl
        name = ctypes.c_uint()
        gl.glGenTextures(1, ctypes.byref(name))
        self.name = name.value
        gl.glBindTexture(g.TEXTURE_2D, self.name)
        for parameter, value in (
            (g.TEXTURE_MIN_FILTER, g.LINEAR),
            (g.TEXTURE_MAG_FILTER, g.LINEAR),
            (g.TEXTURE_WRAP_S, g.CLAMP_TO_EDGE),
            (g.TEXTURE_WRAP_T, g.CLAMP_TO_EDGE),
        ):
            gl.glTexParameteri(g.TEXTURE_2D, parameter, value)
        gl.glTexImage2D(g.TEXTURE_2D, 0, g.RGBA, size[0], size[1], 0, g.RGBA, g.UNSIGNED_BYTE, None)
        self.uploads = 0  # rectangles uploaded (tests count them)
        self.uploaded_pixels = 0

    def upload(self, surface: pygame.Surface, rect: pygame.Rect | None = None) -> None:
        """Copy ``rect`` of ``surface`` (same size as the texture; default: all of it)."""
        area = surface.get_rect() if rect is None else rect.clip(surface.get_rect())
        if area.w <= 0 or area.h <= 0:
            return
        gl = self.context.gl
        gl.glBindTexture(g.TEXTURE_2D, self.name)
        gl.glPixelStorei(g.UNPACK_ALIGNMENT, 4)
        if byte_order(surface) is None:
            surface = to_32_bits(surface)
        pitch = surface.get_pitch() // 4
        if self.context.info.row_length:
            gl.glPixelStorei(g.UNPACK_ROW_LENGTH, pitch)
            gl.glPixelStorei(g.UNPACK_SKIP_PIXELS, area.x)
            gl.glPixelStorei(g.UNPACK_SKIP_ROWS, area.y)
            # The pixels' address without a lock or a copy (get_view() locks the surface for
            # as long as the view lives); pinned in tests/test_dependency_privates.py.
            _sub_image(gl, area, surface._pixels_address)
            gl.glPixelStorei(g.UNPACK_ROW_LENGTH, 0)
            gl.glPixelStorei(g.UNPACK_SKIP_PIXELS, 0)
            gl.glPixelStorei(g.UNPACK_SKIP_ROWS, 0)
        elif pitch == surface.get_width():
            # OpenGL ES 2.0 has no row length: whole rows, straight from the surface
            area = pygame.Rect(0, area.y, surface.get_width(), area.h)
            _sub_image(gl, area, surface._pixels_address + area.y * surface.get_pitch())
        else:
            data = surface.subsurface(area).copy()  # a packed copy of the rectangle
            _sub_image(gl, area, data._pixels_address)
        self.uploads += 1
        self.uploaded_pixels += area.w * area.h

    def delete(self) -> None:
        if self.name and not self.context.closed:
            self.context.gl.glDeleteTextures(1, ctypes.byref(ctypes.c_uint(self.name)))
        self.name = 0


def _sub_image(gl: g.GL, area: pygame.Rect, address: int) -> None:
    gl.glTexSubImage2D(
        g.TEXTURE_2D, 0, area.x, area.y, area.w, area.h, g.RGBA, g.UNSIGNED_BYTE, address
    )


def to_32_bits(surface: pygame.Surface) -> pygame.Surface:
    """A copy in pygame's usual 32-bit format (B, G, R, A bytes), keeping per-pixel alpha."""
    flags = surface.get_flags() & pygame.SRCALPHA
    return surface.convert(pygame.Surface((1, 1), flags, 32))


@dataclass
class Framebuffer:
    """A texture one can draw into (a device's screen in the simulator, a zone rendered by
    GL, a frame read back) and read back as a pygame surface."""

    texture: Texture
    name: int

    @classmethod
    def create(cls, context: g.GLContext, size: tuple[int, int]) -> Framebuffer:
        gl = context.gl
        limit = ctypes.c_int()
        gl.glGetIntegerv(g.MAX_TEXTURE_SIZE, ctypes.byref(limit))
        if max(size) > limit.value:
            raise PlayerError(f"{size[0]}x{size[1]} exceeds the GPU's {limit.value} px textures")
        texture = Texture(context, size)
        name = ctypes.c_uint()
        gl.glGenFramebuffers(1, ctypes.byref(name))
        gl.glBindFramebuffer(g.FRAMEBUFFER, name.value)
        gl.glFramebufferTexture2D(g.FRAMEBUFFER, g.COLOR_ATTACHMENT0, g.TEXTURE_2D, texture.name, 0)
        status = gl.glCheckFramebufferStatus(g.FRAMEBUFFER)
        gl.glBindFramebuffer(g.FRAMEBUFFER, 0)
        if status != g.FRAMEBUFFER_COMPLETE:
            texture.delete()
            raise PlayerError(f"framebuffer of {size[0]}x{size[1]} incomplete (0x{status:04x})")
        return cls(texture, name.value)

    @property
    def size(self) -> tuple[int, int]:
        return self.texture.size

    def read(self) -> pygame.Surface:
        """The pixels, row 0 first, as an opaque 32-bit surface."""
        return read_pixels(self.texture.context.gl, self.name, self.size)

    def delete(self) -> None:
        context = self.texture.context
        if self.name and not context.closed:
            context.gl.glDeleteFramebuffers(1, ctypes.byref(ctypes.c_uint(self.name)))
        self.name = 0
        self.texture.delete()


def read_pixels(gl: g.GL, framebuffer: int, size: tuple[int, int]) -> pygame.Surface:
    """``glReadPixels`` of a framebuffer's rows as they are stored (row 0 = GL's bottom)."""
    width, height = size
    data = ctypes.create_string_buffer(width * height * 4)
    gl.glBindFramebuffer(g.FRAMEBUFFER, framebuffer)
    gl.glPixelStorei(g.PACK_ALIGNMENT, 4)
    gl.glReadPixels(0, 0, width, height, g.RGBA, g.UNSIGNED_BYTE, data)
    picture = pygame.image.frombuffer(data.raw, size, "RGBX")
    frame = pygame.Surface(size)  # pygame's own 32-bit format, as the software path gives
    frame.blit(picture, (0, 0))
    return frame


class _Sized(Protocol):
    @property
    def size(self) -> tuple[int, int]: ...

    def delete(self) -> None: ...


T = TypeVar("T", bound=_Sized)


class Pool(Generic[T]):
    """GL objects of released layers, kept for the next layer of the same size.

    A slideshow then allocates nothing per switch, and deletes nothing: on Mesa a deleted
    texture that recent frames sampled is only freed once the context is idle, so each
    deletion costs a wait for the GPU (``GLContext.collect``). ``give_back`` may be called from
    any thread (finalizers); at most ``keep`` objects wait, the oldest are deleted.
    """

    def __init__(self, context: g.GLContext, create: Callable[[tuple[int, int]], T], keep: int):
        self._context = context
        self._create = create
        self._keep = keep
        self._returned: deque[T] = deque()
        self._spares: list[T] = []
        self.created = 0

    def give_back(self, thing: T) -> None:
        self._returned.append(thing)

    def take(self, size: tuple[int, int]) -> T:
        while self._returned:
            self._spares.append(self._returned.popleft())
        found = next((i for i, spare in enumerate(self._spares) if spare.size == size), None)
        thing = self._spares.pop(found) if found is not None else None
        while len(self._spares) > self._keep:
            self._context.doom(self._spares.pop(0))
        if thing is None:
            thing = self._create(size)
            self.created += 1
        return thing
