"""How a Transformer model runs: device, precision, CPU threads, an optional label mapping.

Kept apart from the model code so that ``workers.scoring.loading`` can name these options without
importing torch (the baseline kind never needs it); torch is imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from pipeline.errors import YuqingError

if TYPE_CHECKING:
    import torch

    from pipeline.settings import Settings

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
Resolved = Literal["fp32", "bf16", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


class RuntimeOptionsError(YuqingError, ValueError):
    """The model runtime options cannot be honoured on this machine."""


@dataclass(frozen=True)
class RuntimeOptions:
    """``device``: auto, cpu, cuda or cuda:N. ``precision``: auto, fp32, bf16, fp16 or int8 (CPU only).

    ``torch_threads`` 0 leaves torch's default. ``labels``, when given, names the sentiment of
    each class index of a model folder that has no card (for configs that say LABEL_0, LABEL_1…).
    """

    device: str = "auto"
    precision: str = "auto"
    torch_threads: int = 0
    labels: tuple[str, ...] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeOptions:
        names = tuple(name.strip() for name in settings.model_labels.split(",") if name.strip())
        return cls(settings.device, settings.precision, settings.torch_threads, names or None)


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; auto picks CUDA when torch can see a GPU."""
    import torch

    wanted = name.strip().lower()
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(wanted)
    except RuntimeError as exc:
        raise RuntimeOptionsError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeOptionsError(f"device {name!r} asked for, but torch sees no CUDA GPU (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise RuntimeOptionsError(f"device {name!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively (AMX or AVX-512 BF16): there bf16 scores about 1.8x
    faster than fp32 with the same labels (measured on the student); elsewhere bf16 is emulated and slow."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:  # not Linux: be safe
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_precision(precision: str, device: torch.device, *, cpu_bf16: bool | None = None) -> Resolved:
    """auto: bf16 on a GPU that has it, else fp16 on GPU; on a CPU bf16 where it is native, else fp32.

    ``cpu_bf16`` says whether this CPU computes bf16 natively; None reads it from the machine.
    """
    import torch

    if precision not in PRECISIONS:
        raise RuntimeOptionsError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            native = cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16
            return "bf16" if native else "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "int8" and device.type != "cpu":
        # torch's dynamic quantisation only has CPU kernels.
        raise RuntimeOptionsError("precision int8 (dynamic quantisation) runs on CPU only; use bf16 or fp16 on GPU")
    resolved: Resolved = precision  # type: ignore[assignment]  # checked against PRECISIONS above
    return resolved


def torch_dtype(precision: Resolved) -> torch.dtype:
    """The dtype the weights are loaded in; int8 loads fp32 and quantises the linear layers after."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads (process-wide) when asked; returns the count in force."""
    import torch

    if threads < 0:
        raise RuntimeOptionsError(f"torch_threads must be 0 (torch's default) or more, not {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
