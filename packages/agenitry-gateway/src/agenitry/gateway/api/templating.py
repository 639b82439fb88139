"""The Jinja2 environment of the public pages (autoescaped), and their stylesheet's folder."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
#: Served at /static: the pages' Content-Security-Policy allows styles from the gateway only.
STATIC_DIRECTORY = Path(__file__).with_name("static")
