"""A network's state as bytes and back: the raw little-endian bytes of its parameter vector
and of its moments (no header, no archive: the spec and the counters travel beside them,
as the store's columns). On a little-endian machine the bytes are the arrays' own memory."""

from __future__ import annotations

import numpy as np

from model.checks import check_finite
from model.errors import ModelError
from model.network import MOMENTS, Network
from model.spec import NetworkSpec, check_int


def state_bytes(network: Network) -> tuple[memoryview, memoryview]:
    """The parameters' and the moments' bytes, little-endian (views, not copies, where the
    machine is little-endian)."""
    little = network.spec.np_dtype.newbyteorder("<")
    theta = np.ascontiguousarray(network.theta, dtype=little)
    # Flat: a memoryview of a (0, size) array (gd's moments) cannot be cast to bytes.
    moments = np.ascontiguousarray(network.moments, dtype=little).reshape(-1)
    return theta.data.cast("B"), moments.data.cast("B")


def network_from_bytes(
    spec: NetworkSpec,
    theta: bytes | bytearray | memoryview,
    moments: bytes | bytearray | memoryview,
    *,
    optimizer_t: int,
    steps_trained: int,
) -> Network:
    """Rebuild a network from :func:`state_bytes` output, validating every part (its own
    writable arrays: one copy of the bytes)."""
    little = spec.np_dtype.newbyteorder("<")
    size = spec.parameter_count
    k = len(MOMENTS[spec.optimizer.name])
    if len(theta) != size * little.itemsize or len(moments) != k * size * little.itemsize:
        raise ModelError(
            f"These bytes are not this network's state: {size} {spec.dtype} parameters and "
            f"{k} moment vectors need {size * little.itemsize} and {k * size * little.itemsize} "
            f"bytes; received {len(theta)} and {len(moments)}."
        )
    network = Network(
        spec,
        np.frombuffer(theta, little).astype(spec.np_dtype),
        np.frombuffer(moments, little).astype(spec.np_dtype).reshape(k, size),
        check_int("optimizer_t", optimizer_t, 0),
        check_int("steps_trained", steps_trained, 0),
    )
    check_finite("the stored parameters", network.theta.reshape(1, -1))
    check_finite("the stored optimizer moments", network.moments.reshape(1, -1))
    return network
