"""Answers serialized by orjson, which writes numpy arrays itself (no Python-level loop)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def versioned(content: Any, version: int, status_code: int = 200) -> ORJSONResponse:
    """An answer that depends on the parameters: it carries their version as an ETag."""
    return ORJSONResponse(content, status_code=status_code, headers={"ETag": f'"{version}"'})
