"""Seeded random streams: every random draw of the simulator comes from here.

A stream is named, so adding a draw to one part of the simulator never shifts the numbers another
part sees; integers in the key (noise level, block index) make independent sub-streams.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str, *key: int) -> np.random.Generator:
    """A PCG64 generator for ``(seed, name, *key)``; the same arguments give the same numbers."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), zlib.crc32(name.encode()), *map(int, key)])))
