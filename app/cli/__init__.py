"""Operators' commands of `python -m app`, one module per group; `app/__main__.py`
registers them."""
