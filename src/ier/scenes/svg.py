"""Rasterise SVG drawings to RGBA with the system librsvg (via ctypes; no Python package needed)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np

from ier.errors import AssetError

_CAIRO_FORMAT_ARGB32 = 0


class _Rect(ctypes.Structure):
    _fields_ = [(n, ctypes.c_double) for n in ("x", "y", "width", "height")]


class _Dims(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("em", ctypes.c_double),
        ("ex", ctypes.c_double),
    ]


def _load(names: tuple[str, ...]) -> ctypes.CDLL:
    for name in names:
        found = ctypes.util.find_library(name.split(".so")[0].removeprefix("lib")) or name
        for candidate in (name, found):
            try:
                return ctypes.CDLL(candidate)
            except OSError:
                continue
    raise AssetError(
        f"cannot load {names[0]}, needed to draw the SVG images of the benchmark; "
        "install the Debian package librsvg2-2 (it comes with chromium)"
    )


@functools.lru_cache(maxsize=1)
def _libs() -> tuple[ctypes.CDLL, ctypes.CDLL, ctypes.CDLL]:
    rsvg = _load(("librsvg-2.so.2", "librsvg-2.so"))
    cairo = _load(("libcairo.so.2", "libcairo.so"))
    gobject = _load(("libgobject-2.0.so.0", "libgobject-2.0.so"))
    vp, dbl = ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)
    rsvg.rsvg_handle_new_from_data.restype = vp
    rsvg.rsvg_handle_new_from_data.argtypes = [ctypes.c_char_p, ctypes.c_size_t, vp]
    rsvg.rsvg_handle_get_intrinsic_size_in_pixels.argtypes = [vp, dbl, dbl]
    rsvg.rsvg_handle_get_intrinsic_size_in_pixels.restype = ctypes.c_int
    rsvg.rsvg_handle_get_dimensions.argtypes = [vp, ctypes.POINTER(_Dims)]
    rsvg.rsvg_handle_render_document.argtypes = [vp, vp, ctypes.POINTER(_Rect), vp]
    rsvg.rsvg_handle_render_document.restype = ctypes.c_int
    cairo.cairo_image_surface_create.restype = vp
    cairo.cairo_image_surface_create.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    cairo.cairo_create.restype = vp
    cairo.cairo_create.argtypes = [vp]
    cairo.cairo_image_surface_get_data.restype = ctypes.POINTER(ctypes.c_ubyte)
    cairo.cairo_image_surface_get_data.argtypes = [vp]
    cairo.cairo_image_surface_get_stride.argtypes = [vp]
    for fn in ("cairo_surface_flush", "cairo_surface_destroy"):
        getattr(cairo, fn).argtypes = [vp]
    cairo.cairo_destroy.argtypes = [vp]
    gobject.g_object_unref.argtypes = [vp]
    return rsvg, cairo, gobject


def _intrinsic_size(rsvg: ctypes.CDLL, handle: int) -> tuple[float, float]:
    width, height = ctypes.c_double(), ctypes.c_double()
    ok = rsvg.rsvg_handle_get_intrinsic_size_in_pixels(
        handle, ctypes.byref(width), ctypes.byref(height)
    )
    if ok and width.value > 0 and height.value > 0:
        return width.value, height.value
    dims = _Dims()
    rsvg.rsvg_handle_get_dimensions(handle, ctypes.byref(dims))
    return float(dims.width), float(dims.height)


def render_svg(data: bytes, *, max_side: int = 256, name: str = "<svg>") -> np.ndarray:
    """Rasterise an SVG document so that its longer side is ``max_side`` pixels.

    Args:
        data: the SVG file's bytes.
        max_side: output size of the longer side, in pixels.
        name: how error messages refer to the document.

    Returns:
        uint8 array (H, W, 4), straight (not premultiplied) RGBA.

    Raises:
        AssetError: librsvg is missing or cannot parse/render the document.
    """
    rsvg, cairo, gobject = _libs()
    handle = rsvg.rsvg_handle_new_from_data(data, len(data), None)
    if not handle:
        raise AssetError(f"librsvg cannot parse the SVG {name}")
    try:
        width, height = _intrinsic_size(rsvg, handle)
        if width <= 0 or height <= 0:
            raise AssetError(f"the SVG {name} has no usable size")
        scale = max_side / max(width, height)
        out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
        surface = cairo.cairo_image_surface_create(_CAIRO_FORMAT_ARGB32, out_w, out_h)
        context = cairo.cairo_create(surface)
        try:
            viewport = _Rect(0.0, 0.0, float(out_w), float(out_h))
            if not rsvg.rsvg_handle_render_document(handle, context, ctypes.byref(viewport), None):
                raise AssetError(f"librsvg failed to render the SVG {name}")
            cairo.cairo_surface_flush(surface)
            stride = cairo.cairo_image_surface_get_stride(surface)
            pointer = cairo.cairo_image_surface_get_data(surface)
            flat = np.ctypeslib.as_array(pointer, shape=(out_h * stride,))
            bgra = flat.reshape(out_h, stride)[:, : out_w * 4].reshape(out_h, out_w, 4).copy()
        finally:
            cairo.cairo_destroy(context)
            cairo.cairo_surface_destroy(surface)
    finally:
        gobject.g_object_unref(handle)
    return _unpremultiply(bgra)


def _unpremultiply(bgra: np.ndarray) -> np.ndarray:
    """Cairo's premultiplied little-endian ARGB32 (B, G, R, A bytes) -> straight RGBA."""
    alpha = bgra[..., 3:4].astype(np.float32)
    rgb = bgra[..., [2, 1, 0]].astype(np.float32) * 255.0 / np.maximum(alpha, 1.0)
    rgb = np.where(alpha > 0, rgb, 0.0)
    return np.concatenate([np.clip(np.rint(rgb), 0, 255), alpha], axis=-1).astype(np.uint8)
