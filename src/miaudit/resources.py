"""What this machine has: its devices, their memory, and the one refusal of work that
would not fit.

Position: the bottom layer, beside :mod:`miaudit.errors` and :mod:`miaudit.files`, below
both the models (:mod:`miaudit.models`, which size their batches and refuse absurd
models) and the jobs (:mod:`miaudit.jobs`, which size their stacks), so that neither
reaches into the other for a question about memory. PyTorch is imported only when a
GPU is asked about.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from miaudit.errors import ConfigError, MiauditError, ModelError

if TYPE_CHECKING:
    import torch

#: Share of the machine's memory one model (or one answer, one file) may need at most:
#: more is refused before any work.
MEMORY_LIMIT_SHARE = 0.8


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, or a :class:`ModelError` saying what to use instead."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"unknown device {device!r}: use 'cpu' or 'cuda'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but no CUDA GPU is available: use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ModelError(f"device {device!r} is not supported: use 'cpu' or 'cuda'")
    return dev


def gpu_memory_now(device: str) -> tuple[int, int, int]:
    """Bytes free and in all on the GPU ``device``, and the most this process has had
    allocated there, after handing the allocator's cached blocks back."""
    import torch

    dev = torch.device(device)
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(dev)
    return int(free), int(total), int(torch.cuda.max_memory_allocated(dev))


def device_memory(device: str = "cpu") -> int:
    """Bytes of memory on ``device`` (the GPU's, or the machine's); a GPU that is not
    there is one line (:func:`resolve_device`)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_properties(resolve_device(device)).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def refuse_past_memory(
    need: int,
    what: str,
    fix: str,
    error: type[MiauditError] = ConfigError,
    device: str = "cpu",
    memory: int | None = None,
) -> None:
    """Refuse, before any work, ``what`` when its estimated ``need`` (bytes) passes
    :data:`MEMORY_LIMIT_SHARE` of ``device``'s memory (or of ``memory`` bytes, the
    Dask workers' smallest): one line naming the estimate, the memory and ``fix``.
    Every check of absurd sizes (models, shadows, a service's answers, a model
    file's arrays) goes through here."""
    where = "this machine's" if memory is None else "the smallest Dask worker's"
    memory = device_memory(device) if memory is None else memory
    if need > MEMORY_LIMIT_SHARE * memory:
        raise error(
            f"{what} would take about {need / 2**30:,.1f} GiB, more than {where} "
            f"{memory / 2**30:,.1f} GiB allows: {fix}"
        )
