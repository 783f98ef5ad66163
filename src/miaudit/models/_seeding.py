"""Turn a model's integer seed into the seeds its framework needs.

Position in the pipeline: ``splits -> target/shadows (training) -> signals``; the
trainers of this package call it for every model they train.

Every trained model has one integer seed (derived upstream from the audit's
``numpy.random.Generator``). Its initial weights, its minibatch order and the
scikit-learn ``random_state`` come from that integer alone, so a model's result
does not depend on which other models were trained beside it.
"""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, bits: int = 64) -> int:
    """Mix ``seed`` into a well-spread ``bits``-bit integer.

    Small consecutive seeds (0, 1, 2, …) are common; hashing them through
    :class:`numpy.random.SeedSequence` keeps the streams they start far apart.

    Parameters
    ----------
    seed:
        Any non-negative integer.
    bits:
        32 (scikit-learn's ``random_state``) or 64 (``torch.Generator``).

    Returns
    -------
    int
        A seed in ``[0, 2**bits)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"a model seed must be a non-negative integer, got {seed!r}")
    if bits == 64:
        return int(np.random.SeedSequence(int(seed)).generate_state(1, dtype=np.uint64)[0])
    if bits == 32:
        return int(np.random.SeedSequence(int(seed)).generate_state(1, dtype=np.uint32)[0])
    raise ValueError(f"bits must be 32 or 64, got {bits}")
