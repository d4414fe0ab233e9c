"""Bit-accurate golden model of DQT nested integer arithmetic: the single source of truth.

``golden.formats``  number formats and operator configurations (frozen dataclasses)
``golden.ops``      one reference function per operator (numpy int64)
``golden.fast``     numba kernels and exactness-checked BLAS for the fast path
``golden.layers``   integer-only layers, reference and fast implementations
``golden.network``  artifact format (manifest + npz) and the network runner
"""
from .formats import *  # noqa: F401,F403
from .ops import *  # noqa: F401,F403
from .network import (  # noqa: F401
    ArtifactError, Network, RunResult, load_network, run_network, save_network,
    validate_network, quantize_input,
)
