"""The network resource of API.md, built from what the store keeps."""

from __future__ import annotations

from typing import Any

from service.store import NetworkMeta


def network_resource(meta: NetworkMeta) -> dict[str, Any]:
    spec = meta.spec
    return {
        "id": meta.id,
        "name": meta.name,
        "layer_dims": list(spec.layer_dims),
        "activations": list(spec.activations),
        "loss": spec.loss,
        "initialization": spec.initialization,
        "seed": spec.seed,
        "dtype": spec.dtype,
        "optimizer": spec.optimizer.to_dict(),
        "l2_lambda": spec.l2_lambda,
        "parameter_count": spec.parameter_count,
        "steps_trained": meta.steps_trained,
        "version": meta.version,
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
    }
