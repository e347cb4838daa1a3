"""Data parallelism over a device mesh: one code path from one CPU to many hosts.

The batch axis is sharded over the mesh axis 'data'; the training state is
replicated. Each process produces only its own slice of every global batch
(`local_batch_slice`) and `shard_batch` assembles the global array, so a laptop
(a mesh of one device) and a multi-host pod run the same code.
"""

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named 'data' over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def local_batch_slice(global_batch_size: int, mesh: Mesh) -> slice:
    """The rows of each global batch that this process produces.

    Raises:
      ValueError: `global_batch_size` does not split evenly over the devices.
    """
    devices = mesh.devices.size
    if global_batch_size % devices:
        raise ValueError(
            f"batch_size: expected a multiple of the {devices} devices of the mesh, "
            f"got {global_batch_size}"
        )
    per_process = global_batch_size // jax.process_count()
    start = jax.process_index() * per_process
    return slice(start, start + per_process)


def shard_batch(local_batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
    """Global arrays, sharded on the batch axis, from this process's rows."""
    sharding = batch_sharding(mesh)
    if jax.process_count() == 1:
        # The local rows are the whole batch: move device arrays without a host round trip.
        return jax.device_put(local_batch, sharding)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch
    )


def replicate(tree: Any, mesh: Mesh) -> Any:
    """`tree` placed whole on every device of `mesh`."""
    return jax.device_put(tree, replicated(mesh))
