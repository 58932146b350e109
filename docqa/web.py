"""The web page at `/`: one HTML page, its ES-module scripts and stylesheet, all served from docqa/static/."""
from __future__ import annotations

from flask import Blueprint, Response, request

blueprint = Blueprint("web", __name__, static_folder="static", static_url_path="/static")

# The page loads only its own files and talks only to this server: no inline code, no other
# origins, no framing (clickjacking), no <base> or plugin tricks.
CONTENT_SECURITY_POLICY = ("default-src 'self'; base-uri 'none'; object-src 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")


@blueprint.get("/")
def index() -> Response:
    """The page: pick a collection, upload files, watch their jobs, ask, open cited pages."""
    return blueprint.send_static_file("index.html")


@blueprint.after_app_request
def security_headers(response: Response) -> Response:
    """Adds the page's security and caching headers to `/` and `/static/*` responses."""
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        # Revalidate every load (a cheap 304 when unchanged) so a page never runs an older script.
        response.headers["Cache-Control"] = "no-cache"
    return response
