"""The page and its assets. Both are public (see :mod:`service.auth`): the page asks for an
API key itself and sends it with every call it makes."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# The page loads nothing from anywhere else, and the browser is told to hold it to that.
# KaTeX writes style attributes into its markup, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

# Like /docs, the page is not part of the API, so it stays out of the OpenAPI schema.
router = APIRouter(include_in_schema=False)
_assets = StaticFiles(directory=STATIC / "assets", check_dir=False)


@router.get("/playground")
def page() -> FileResponse:
    # no-cache: a browser revalidates (ETag) so a rebuilt page is seen on the next load.
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=headers)


@router.get("/playground/assets/{path:path}")
async def asset(path: str, request: Request) -> Response:
    # StaticFiles refuses paths that leave the directory and answers ETags and 304s.
    return await _assets.get_response(path, request.scope)
