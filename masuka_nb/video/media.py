"""Images going to providers (fitted to their sizes and byte limits) and MP4s coming back (checked, first frame).

No video decoder is assumed: an MP4 is checked by its boxes, and the first frame is taken with
PyAV when it is installed, else with the ffmpeg program (Colab has it), else straight from the
file when its frames are JPEG (Motion JPEG, as the test fakes make).
"""

from __future__ import annotations

import base64
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masuka_nb.errors import InvalidRequestError

__all__ = ["ImageInput", "first_frame", "is_mp4", "mp4_boxes"]


@dataclass
class ImageInput:
    """A local image (path, PIL image or bytes) or an https URL, ready to send the way a provider wants."""

    url: str | None = None
    data: bytes | None = None
    name: str = "image.png"
    last: ImageInput | None = None  # a last frame (Veo on CometAPI takes first and last)

    @property
    def frames(self) -> int:
        return 2 if self.last is not None else 1

    @classmethod
    def from_any(cls, image: Any) -> ImageInput | None:
        if image is None:
            return None
        if isinstance(image, ImageInput):
            return image
        if isinstance(image, (tuple, list)):
            if len(image) != 2:
                raise InvalidRequestError("`image` as a pair is (first frame, last frame).", argument="image",
                                          value=f"{len(image)} images")
            first = cls.from_any(image[0])
            first.last = cls.from_any(image[1])
            return first
        if isinstance(image, str) and image.startswith(("http://", "https://")):
            return cls(url=image)
        if isinstance(image, (str, os.PathLike)):
            path = Path(image)
            if not path.is_file():
                raise InvalidRequestError(f"The image {path} does not exist.", argument="image", value=str(path))
            return cls(data=path.read_bytes(), name=path.name)
        if isinstance(image, bytes):
            return cls(data=image)
        if hasattr(image, "save"):  # a PIL image
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            return cls(data=buf.getvalue())
        raise InvalidRequestError("`image` must be a file path, an https URL, a PIL image or bytes.",
                                  argument="image", value=type(image).__name__)

    def pil(self):
        from PIL import Image, ImageOps

        if self.data is None:
            raise InvalidRequestError("This provider needs the image itself, not a URL.", argument="image", value=self.url,
                                      hint="Download the image and pass its path.")
        try:
            img = Image.open(io.BytesIO(self.data))
            img = ImageOps.exif_transpose(img)
            return img.convert("RGB")
        except Exception as exc:  # PIL raises many types for a bad file
            raise InvalidRequestError(f"`image` is not a readable image: {exc}.", argument="image", value=self.name) from exc

    def aspect(self) -> str | None:
        if self.data is None:
            return None
        w, h = self.pil().size
        return f"{w}:{h}"

    def fitted(self, width: int, height: int, fmt: str = "PNG") -> bytes:
        """Crop to the aspect and resize to exactly width × height (Sora wants the clip's own size)."""
        from PIL import ImageOps

        img = ImageOps.fit(self.pil(), (width, height))
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()

    def limited(self, max_bytes: int) -> tuple[bytes, str]:
        """The image as JPEG (or its original bytes when small enough), shrunk until under `max_bytes`."""
        if self.data is not None and len(self.data) <= max_bytes and self.data[:3] in (b"\xff\xd8\xff", b"\x89PN"):
            return self.data, "image/jpeg" if self.data[:2] == b"\xff\xd8" else "image/png"
        img = self.pil()
        quality = 92
        while True:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=quality)
            if buf.tell() <= max_bytes or min(img.size) < 64:
                return buf.getvalue(), "image/jpeg"
            if quality > 70:
                quality -= 10
            else:
                img = img.resize((img.width * 3 // 4, img.height * 3 // 4))

    def data_uri(self, max_bytes: int) -> str:
        if self.url:
            return self.url
        data, mime = self.limited(max_bytes * 3 // 4)  # base64 grows it by a third
        return f"data:{mime};base64," + base64.b64encode(data).decode()

    def raw_base64(self, max_bytes: int) -> str:
        if self.url:
            return self.url
        data, _ = self.limited(max_bytes * 3 // 4)
        return base64.b64encode(data).decode()


# ---- MP4 ---------------------------------------------------------------------------------------

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts"}


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> dict[str, tuple[int, int]]:
    """Box path ('moov/trak/mdia/...') -> (payload offset, payload size) for the first of each."""
    end = len(data) if end is None else end
    out: dict[str, tuple[int, int]] = {}
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        name = kind.decode("latin-1")
        out.setdefault(name, (pos + header, size - header))
        if kind in _CONTAINERS and depth < 8:
            for sub, where in mp4_boxes(data, pos + header, pos + size, depth + 1).items():
                out.setdefault(f"{name}/{sub}", where)
        pos += size
    return out


def is_mp4(path: str | os.PathLike[str]) -> bool:
    """An ISO media file: `ftyp` first, top-level boxes that tile the file exactly, `moov` and `mdat` present.

    Walks the box headers with seeks, so a 50 MB clip is checked without reading it; a cut-off
    file fails because its last box runs past the end.
    """
    size = os.path.getsize(path)
    seen: set[bytes] = set()
    with open(path, "rb") as fh:
        pos = 0
        while pos < size:
            fh.seek(pos)
            head = fh.read(16)
            if len(head) < 8:
                return False
            box, kind = struct.unpack(">I4s", head[:8])
            if box == 1 and len(head) == 16:
                box = struct.unpack(">Q", head[8:16])[0]
            elif box == 0:
                box = size - pos
            if box < 8 or pos + box > size or (pos == 0 and kind != b"ftyp"):
                return False
            seen.add(kind)
            pos += box
    return b"moov" in seen and b"mdat" in seen


def first_frame(path: str | os.PathLike[str]):
    """The first frame as a PIL image, or None when no decoder can read it."""
    try:
        import av  # type: ignore[import-not-found]

        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return frame.to_image()
    except ImportError:
        pass
    except Exception:
        return None
    frame = _ffmpeg_frame(path)
    if frame is not None:
        return frame
    data = Path(path).read_bytes()
    boxes = mp4_boxes(data)
    try:
        stsz_off, _ = boxes["moov/trak/mdia/minf/stbl/stsz"]
        stco_off, _ = boxes["moov/trak/mdia/minf/stbl/stco"]
        sample_size = struct.unpack(">I", data[stsz_off + 4:stsz_off + 8])[0]
        if sample_size == 0:
            sample_size = struct.unpack(">I", data[stsz_off + 12:stsz_off + 16])[0]
        chunk_off = struct.unpack(">I", data[stco_off + 8:stco_off + 12])[0]
        sample = data[chunk_off:chunk_off + sample_size]
    except (KeyError, struct.error):
        return None
    if not sample.startswith(b"\xff\xd8"):
        return None  # H.264 and friends need a decoder (pip install av)
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(sample))
        img.load()
        return img
    except Exception:
        return None


def _ffmpeg_frame(path: str | os.PathLike[str]):
    """The first frame through the ffmpeg program when there is one (Colab ships it)."""
    import shutil
    import subprocess

    exe = shutil.which("ffmpeg")
    if exe is None:
        try:  # imageio-ffmpeg (on Colab's image) carries its own ffmpeg program
            import imageio_ffmpeg

            exe = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError):
            return None
    try:
        out = subprocess.run([exe, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe",
                              "-vcodec", "mjpeg", "-"], capture_output=True, timeout=30, check=True).stdout
        from PIL import Image

        img = Image.open(io.BytesIO(out))
        img.load()
        return img
    except Exception:  # a missing codec or a broken file: no thumbnail, not a failed job
        return None
