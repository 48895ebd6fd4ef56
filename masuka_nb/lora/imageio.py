"""Turning whatever a user uploads into a clean RGB image, or a reason why not.

One function, `decode_image(data, name)`, is the boundary between Pillow's many ways of failing
and the dataset: it returns a `Decoded` (RGB, EXIF orientation applied, alpha flattened on white,
16-bit scaled down, first frame of an animation) or raises `ImageRejected` with a short code and a
sentence a user can act on. It never raises anything else, so one bad file cannot stop an import.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MIN_SIDE", "Decoded", "ImageRejected", "decode_image", "heif_available"]

DEFAULT_MIN_SIDE = 256
# Pillow's own default bomb limit (≈89 MP): a 24 MP phone photo passes, a 30000² "bomb" does not.
DEFAULT_MAX_PIXELS = 89_478_485


class ImageRejected(Exception):
    """Internal: why one file cannot join a dataset (`code` is stable, `reason` is for people)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Decoded:
    image: object  # PIL.Image.Image in RGB
    format: str
    notes: list[str] = field(default_factory=list)
    untouched: bool = False  # True: the original bytes are already the RGB image we would write


_heif_state: bool | None = None


def heif_available() -> bool:
    """Register pillow-heif's opener once when it is installed (the `heic` extra)."""
    global _heif_state
    if _heif_state is None:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_state = True
        except ImportError:
            _heif_state = False
    return _heif_state


def _looks_like_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


def _to_rgb(img, notes: list[str]):
    import numpy as np
    from PIL import Image

    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit samples fill 0..65535; Pillow's plain convert would clip everything above 255 to white.
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        notes.append(f"{mode} samples scaled to 8 bit")
        arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
        arr8 = ((arr - lo) / max(hi - lo, 1e-9) * 255).astype(np.uint8)
        notes.append("float samples scaled to 8 bit")
        return Image.fromarray(arr8, mode="L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        notes.append("transparency flattened on white")
        return background.convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
        return _cmyk_to_rgb(img)
    if mode != "RGB":
        notes.append(f"{mode} converted to RGB")
        return img.convert("RGB")
    return img


def _cmyk_to_rgb(img):
    profile = img.info.get("icc_profile")
    if profile:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # a broken embedded profile: the plain conversion is still a usable image
            pass
    return img.convert("RGB")


EPS_NEEDS_GHOSTSCRIPT = (
    "EPS is PostScript, which Pillow draws with Ghostscript, and Ghostscript is not installed here: install it "
    "(Colab or Debian/Ubuntu: `!apt-get install -y ghostscript`; macOS: `brew install ghostscript`; "
    "https://ghostscript.com/releases/) and import again, or export the picture as PNG or JPEG"
)


def _psd_layers_readable(img) -> bool:
    """Reading a PSD's layer table can fail on odd files; the composite is still the image we want."""
    try:
        img.layers  # noqa: B018 (a cached property that parses the layer table)
        return True
    except Exception:
        return False


def decode_image(
    data: bytes,
    name: str = "",
    *,
    min_side: int = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Decoded:
    """Decode `data` into an RGB image, or raise `ImageRejected(code, reason)`."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageRejected("empty", "the file is empty (0 bytes)")
    if _looks_like_heif(data) and not heif_available():
        # setup, not plain pip: pip would upgrade Colab's Pillow under the running kernel (pillow-heif 1.9
        # needs Pillow 13), while setup picks a pillow-heif that fits the Pillow already there
        raise ImageRejected("heif_unsupported", "HEIC/HEIF photos need pillow-heif, which is not installed: run "
                            "`python setup_colab.py --extras heic` (it keeps Colab's Pillow), or save the photo as JPEG")
    heif_available()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageRejected(
                    "decompression_bomb",
                    f"{w}×{h} is {w * h / 1e6:.0f} MP, above the {max_pixels / 1e6:.0f} MP safety limit "
                    "(a decompression bomb or an absurdly large image)",
                )
            fmt = img.format or "unknown"
            notes: list[str] = []
            if fmt == "PSD":
                # Photoshop: the image as opened is the flattened composite; its "frames" are the layers,
                # numbered from 1, so seek(0) would fail ("attempt to seek outside sequence").
                layers = len(img.layers) if _psd_layers_readable(img) else 0
                if layers > 1:
                    notes.append(f"layered PSD ({layers} layers): the flattened composite used")
            elif getattr(img, "n_frames", 1) > 1:
                img.seek(0)
                notes.append(f"animated ({img.n_frames} frames): first frame used")
            try:
                img.load()
            except OSError as exc:
                if fmt == "EPS" and "ghostscript" in str(exc).lower():
                    raise ImageRejected("eps_needs_ghostscript", EPS_NEEDS_GHOSTSCRIPT) from exc
                raise
            orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
            if orientation not in (None, 1):
                img = ImageOps.exif_transpose(img)
                notes.append(f"EXIF orientation {orientation} applied")
            original_mode = img.mode
            rgb = _to_rgb(img, notes)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("decompression_bomb", f"decompression bomb: {exc}") from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageRejected("decompression_bomb", f"decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not_an_image", "not an image Pillow can read (wrong extension or another file type)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        text = str(exc)
        code = "truncated" if "truncat" in text.lower() or isinstance(exc, EOFError) else "corrupt"
        raise ImageRejected(code, f"the image data is {'truncated' if code == 'truncated' else 'damaged'}: {text}") from exc
    except Exception as exc:  # a plugin's own error class: still one file, still a reason
        raise ImageRejected("corrupt", f"the image could not be decoded: {type(exc).__name__}: {exc}") from exc
    if min(rgb.size) < min_side:
        raise ImageRejected(
            "too_small",
            f"{rgb.size[0]}×{rgb.size[1]} is below the minimum short side of {min_side} px",
        )
    untouched = fmt in ("JPEG", "PNG") and original_mode == "RGB" and not notes
    return Decoded(image=rgb, format=fmt, notes=notes, untouched=untouched)
