"""A method swapped on one object for the length of a with-block (the fast paths' way into library code)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def replaced_method(obj, name: str, replacement):
    """Within: ``obj.<name>`` is ``replacement``, an instance attribute over the class's method (or over an
    earlier patch, which is put back); removed in ``finally`` so the class's method shows through again."""
    patched_before = name in vars(obj)
    original = getattr(obj, name)
    setattr(obj, name, replacement)
    try:
        yield
    finally:
        if patched_before:
            setattr(obj, name, original)
        else:
            delattr(obj, name)
