"""(being built)"""
from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("documents_api", __name__)
