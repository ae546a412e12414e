"""What /docs and /redoc show: the notation, the derivation of backpropagation, and
problem+json for every documented error."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.core.auth import is_public
from service.core.errors import PROBLEM_JSON, is_v2
from service.core.schemas import Problem

DESCRIPTION = r"""
Create L-layer fully-connected neural networks, train them by forward propagation,
backpropagation and gradient descent, inspect the cost and every gradient, and predict.

## Notation

Examples are **columns**: a batch `X` has shape `(n_x, m)`. For `layer_dims = [n_x, n_1, ..., n_L]`:

    A[0] = X                                 (n_x, m)
    Z[l] = W[l] A[l-1] + b[l]                W[l]: (n_l, n_{l-1}),  b[l]: (n_l, 1)
    A[l] = g[l](Z[l])                        A[L] = Y_hat: (n_L, m)

The cost averages a per-example loss: `J = (1/m) sum_i loss(A[L](i), Y(i))`, plus
`(lambda/(2m)) sum_l ||W[l]||^2` with L2 regularization.

## Backpropagation, derived by the chain rule

Write `dA[l]` for the gradient of the *per-example* loss with respect to `A[l]` and `dZ[l]`
for the gradient with respect to `Z[l]` (column `i` belongs to example `i`; nothing is
divided by `m` yet).

1. `A[l] = g(Z[l])` acts entry by entry, so each entry of `Z[l]` influences only the same
   entry of `A[l]`:

       dZ[l] = dA[l] * g'(Z[l])                      (element-wise product)

2. `Z[l] = W[l] A[l-1] + b[l]`. Entry `Z[l]_jk = sum_i W[l]_ji A[l-1]_ik + b[l]_j`, so
   `dZ/dW[l]_ji` picks `A[l-1]_ik` and summing over the examples `k` gives a matrix
   product with the *transpose of the previous layer's activations*; the cost averages over
   the `m` examples, so this is where `1/m` enters:

       dW[l] = (1/m) dZ[l] A[l-1]^T                  (+ (lambda/m) W[l] with L2)
       db[l] = (1/m) sum(dZ[l], axis=1, keepdims=True)

3. `A[l-1]_ik` feeds every unit `j` of layer `l` through `W[l]_ji`, so its gradient sums
   over `j`: a product with the transpose of the *weights* (not of `dW`):

       dA[l-1] = W[l]^T dZ[l]
       dZ[l-1] = dA[l-1] * g'[l-1](Z[l-1])

4. At the output, the canonical pairs simplify to the same expression:
   - sigmoid + binary cross-entropy: `loss = -(y log a + (1-y) log(1-a))`, so
     `dA = -y/a + (1-y)/(1-a)` and `g'(z) = a(1-a)`; their product is `a - y`.
   - softmax + categorical cross-entropy: `loss = -sum_k y_k log a_k`, and with
     `sum_k y_k = 1` the softmax Jacobian gives `a - y`.
   - linear + mean squared error: `loss = (1/2)(a-y)^2`, `g' = 1`, so `a - y`.

   So `dZ[L] = A[L] - Y` for those pairs; any other pair uses `dZ[L] = dA[L] * g'(Z[L])`.

Two typos circulate in copies of these equations: `dW[l] = (1/m) dZ[l] A[L]^T` (it is
`A[l-1]^T`, the *input* of layer `l`) and `dA[l-1] = dW[l]^T dZ[l]` (it is the weights
`W[l]^T`). Every gradient this service computes is checked against two-sided finite
differences (`POST /networks/{id}/gradient-check`), which catches exactly such mistakes.

## Matrices on the wire

Either an array of rows (`X` is `n_x` rows of `m` numbers) or
`{"shape": [rows, cols], "dtype": "float32"|"float64", "base64": "..."}` with the C-order
little-endian bytes. Answers use nested lists, or base64 with `?encoding=base64`.

## Errors

Every error is `application/problem+json` (RFC 9457) with a `detail` a person can act on.
"""


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route."""
    return {code: {"description": HTTPStatus(code).phrase} for code in codes}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with every 4xx/5xx answer as problem+json and, when API keys are
    configured, the bearer scheme on every route that needs one."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    keyed = bool(app.state.settings.api_key_list)
    if keyed:
        # The bearer scheme makes the explorer's "Authorize" button send the API key.
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
    for route, path in schema.get("paths", {}).items():
        for operation in path.values():
            if keyed and is_public(route):
                operation["security"] = []
            elif keyed:
                operation["responses"].setdefault("401", {})
            for code, answer in operation.get("responses", {}).items():
                if code[0] in "45" and not is_v2(route):
                    answer["content"] = _problem_content()
                    answer["description"] = HTTPStatus(int(code)).phrase
    app.openapi_schema = schema
    return schema
