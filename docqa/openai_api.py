"""(being built)"""
from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("openai_api", __name__)
