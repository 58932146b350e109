"""(being built)"""
from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("web", __name__)
