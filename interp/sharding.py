"""Meshes and shardings for every family: one code path from one CPU to many hosts.

One mesh axis, `AXIS` ('data'), carries whatever a call is batched over:
the examples of a training or dissection batch, the objectives of
`featviz.render_each`, the images an attribution explains. Parameters and
other shared state are replicated. Each process produces only its own slice
of every global batch (`local_batch_slice`) and `shard_batch` assembles the
global array, so a laptop (a mesh of one device) and a multi-host pod run the
same code.
"""

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = [
    "AXIS",
    "batch_sharding",
    "check_mesh",
    "data_mesh",
    "local_batch_slice",
    "replicate",
    "replicated",
    "shard_batch",
]

AXIS = "data"


def data_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named `AXIS` over `devices` (default: every device of every process)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (AXIS,))


def check_mesh(mesh: Mesh, argument: str = "mesh") -> Mesh:
    """Returns `mesh` if it has the axis `AXIS`; otherwise a `ValueError` naming `argument`."""
    if AXIS not in mesh.axis_names:
        raise ValueError(f"{argument}: expected a mesh with an axis named {AXIS!r} "
                         f"(interp.sharding.data_mesh()), got axes {mesh.axis_names}")
    return mesh


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Arrays split on their leading axis over the mesh's `AXIS`."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """Arrays placed whole on every device of the mesh."""
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
