"""Where am I running: Colab or not, which GPU (and what it can really do), how much RAM and disk.

Stdlib only at import; torch is imported inside `detect()` only when it is already installed, so
`masuka_nb.doctor()` works on a machine without torch too. `PROFILES` holds the runtimes MASUKA
plans for (T4, L4, A100, H100, CPU) as data: the memory planner and its tests read them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from masuka_nb.errors import InvalidRequestError

__all__ = [
    "PROFILES",
    "GpuProfile",
    "RuntimeInfo",
    "detect",
    "detect_quick",
    "drive_root",
    "free_memory",
    "in_colab",
    "meaning",
    "profile",
]

DRIVE_MOUNT = Path("/content/drive")


def in_colab() -> bool:
    """True inside a Colab kernel. The `google.colab` package can be pip-installed anywhere, so
    importability is not proof: the module being loaded, or Colab's release tag, is."""
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def free_memory() -> None:
    """Give memory back after dropping a model: collect Python garbage, then return PyTorch's cached
    CUDA blocks to the driver so the next model (or another process) can use them."""
    gc.collect()
    with contextlib.suppress(ImportError):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def drive_root(root: Path | None = None) -> Path | None:
    """`root` (default `/content/drive/MyDrive`; the `drive_root` setting) when Drive is mounted there, else None."""
    root = Path(root) if root is not None else DRIVE_MOUNT / "MyDrive"
    try:
        return root if root.is_dir() else None
    except OSError:
        return None


@dataclass(frozen=True)
class GpuProfile:
    """A runtime MASUKA plans for. `bf16` is real hardware support (compute capability ≥ 8.0)."""

    name: str
    vram_gb: float
    ram_gb: float
    compute_capability: tuple[int, int] | None
    disk_gb: float = 100.0
    label: str = ""

    @property
    def is_cuda(self) -> bool:
        return self.compute_capability is not None

    @property
    def bf16(self) -> bool:
        return self.compute_capability is not None and self.compute_capability >= (8, 0)


# Usable figures, not marketing ones: a T4 leaves ≈15 GB to PyTorch, free Colab ≈12.7 GB RAM.
PROFILES: dict[str, GpuProfile] = {
    "t4": GpuProfile("t4", 15.0, 12.7, (7, 5), label="Colab free T4 (16 GB, 12.7 GB RAM)"),
    "t4-highram": GpuProfile("t4-highram", 15.0, 51.0, (7, 5), label="Colab T4 high-RAM"),
    "l4": GpuProfile("l4", 22.5, 51.0, (8, 9), label="Colab L4 (24 GB)"),
    "a100-40": GpuProfile("a100-40", 39.5, 83.0, (8, 0), label="A100 40 GB"),
    "a100-80": GpuProfile("a100-80", 79.0, 167.0, (8, 0), label="A100 80 GB"),
    "h100": GpuProfile("h100", 79.0, 167.0, (9, 0), label="H100 80 GB"),
    "cpu": GpuProfile("cpu", 0.0, 12.7, None, label="CPU only"),
}


def profile(name: str) -> GpuProfile:
    key = name.strip().lower()
    if key not in PROFILES:
        raise InvalidRequestError(
            f"Unknown runtime profile `{name}`.",
            argument="gpu",
            value=name,
            hint="Use one of: " + ", ".join(PROFILES) + ".",
        )
    return PROFILES[key]


@dataclass(frozen=True)
class RuntimeInfo:
    colab: bool
    python: str
    gpu_name: str | None
    vram_gb: float
    compute_capability: tuple[int, int] | None
    gpu_count: int
    ram_gb: float
    disk_free_gb: float
    drive_mounted: bool
    torch_version: str | None
    cuda_version: str | None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def bf16(self) -> bool:
        """Real bf16 hardware. `torch.cuda.is_bf16_supported()` says True on a T4 (emulated, slow)."""
        return self.compute_capability is not None and self.compute_capability >= (8, 0)

    @property
    def has_gpu(self) -> bool:
        return self.gpu_name is not None

    def as_profile(self) -> GpuProfile:
        """This machine as a planning profile."""
        name = "cpu" if not self.has_gpu else _profile_name(self.gpu_name or "", self.vram_gb)
        base = PROFILES.get(name)
        if base is None:
            return GpuProfile(name, self.vram_gb, self.ram_gb, self.compute_capability, self.disk_free_gb)
        return replace(base, vram_gb=min(base.vram_gb, self.vram_gb) if self.has_gpu else 0.0,
                       ram_gb=self.ram_gb, disk_gb=self.disk_free_gb)


def _profile_name(gpu_name: str, vram_gb: float) -> str:
    n = gpu_name.lower()
    if "t4" in n:
        return "t4"
    if "l4" in n:
        return "l4"
    if "a100" in n:
        return "a100-80" if vram_gb > 45 else "a100-40"
    if "h100" in n or "h200" in n:
        return "h100"
    return "custom"


def _ram_gb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError, AttributeError):
        return 0.0


def available_ram_gb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return _ram_gb()


def detect() -> RuntimeInfo:
    """Look at this machine now (cheap; call again after a runtime change)."""
    gpu_name = None
    vram = 0.0
    cc = None
    count = 0
    torch_version = cuda_version = None
    notes: list[str] = []
    try:
        import torch

        torch_version = torch.__version__
        cuda_version = torch.version.cuda
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            props = torch.cuda.get_device_properties(0)
            gpu_name = props.name
            vram = props.total_memory / 1024**3
            cc = (props.major, props.minor)
    except ImportError:
        notes.append("torch is not installed")
    return _info(gpu_name, vram, cc, count, torch_version=torch_version, cuda_version=cuda_version, notes=notes)


def _info(gpu_name: str | None, vram: float, cc: tuple[int, int] | None, count: int, *,
          torch_version: str | None, cuda_version: str | None, notes: list[str] | tuple[str, ...]) -> RuntimeInfo:
    """A `RuntimeInfo` from GPU facts (however they were probed) plus the machine facts every probe shares."""
    try:
        disk = shutil.disk_usage("/content" if Path("/content").is_dir() else Path.home()).free / 1024**3
    except OSError:
        disk = 0.0
    return RuntimeInfo(
        colab=in_colab(),
        python=".".join(map(str, sys.version_info[:3])),
        gpu_name=gpu_name,
        vram_gb=round(vram, 1),
        compute_capability=cc,
        gpu_count=count,
        ram_gb=round(_ram_gb(), 1),
        disk_free_gb=round(disk, 1),
        drive_mounted=drive_root() is not None,
        torch_version=torch_version,
        cuda_version=cuda_version,
        notes=tuple(notes),
    )


def _nvidia_smi() -> tuple[str, float, tuple[int, int] | None, int] | None:
    """(name, VRAM GB, compute capability, count) of GPU 0 from `nvidia-smi`, or None (no driver,
    no GPU, or a driver too old to answer). Milliseconds, and no torch."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    import subprocess

    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        return None
    name, mem, cap = ([p.strip() for p in lines[0].split(",")] + ["", "", ""])[:3]
    try:
        vram = float(mem) / 1024
    except ValueError:
        vram = 0.0
    try:
        major, minor = cap.split(".")
        cc: tuple[int, int] | None = (int(major), int(minor))
    except ValueError:
        cc = None
    return name, vram, cc, len(lines)


def detect_quick() -> RuntimeInfo:
    """`detect()` without importing torch: the GPU comes from `nvidia-smi` (what the app's header and
    form need at start; torch loads with the first piece of work). `torch_version` stays None."""
    gpu = _nvidia_smi()
    name, vram, cc, count = gpu if gpu is not None else (None, 0.0, None, 0)
    return _info(name, vram, cc, count, torch_version=None, cuda_version=None, notes=("GPU facts from nvidia-smi",))


def meaning(info: RuntimeInfo) -> list[str]:
    """What this runtime means for MASUKA, in a user's words."""
    if not info.has_gpu:
        return [
            "No GPU: images, captions and training use the embedded tiny models (noise, labelled so); a real "
            "image model needs a GPU runtime (on a CPU it needs ≈36 GB RAM and minutes per image). Video and "
            "cloud training run on hosted APIs as usual.",
        ]
    p = info.as_profile()
    lines = []
    if not p.bf16:
        lines.append(f"{info.gpu_name}: no bf16 hardware, so FLUX runs as NF4 in fp16; training uses QLoRA (NF4 + fp16).")
    else:
        lines.append(f"{info.gpu_name}: bf16 hardware; FLUX and SD3.5 run in bf16.")
    if info.ram_gb < 20:
        lines.append(f"{info.ram_gb:.1f} GiB RAM: MASUKA loads pre-quantized weights and frees text encoders "
                     "after encoding so the session does not crash.")
    if p.vram_gb >= 39:
        lines.append("Enough VRAM for bf16 LoRA training and optional torch.compile.")
    return lines
