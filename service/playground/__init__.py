"""The playground: ``GET /playground``, a page that builds, trains and inspects a network
through this service's public API, and its assets under ``/playground/assets/``.

The page's sources are ``playground/`` at the top of the repository; ``static/`` here is their
build, committed so that serving the page needs no Node.js. Rebuild it with
``npm --prefix playground ci && npm --prefix playground run build``.
"""

from service.playground.routes import router

__all__ = ["router"]
