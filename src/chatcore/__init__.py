"""chatcore: the pure core of the career-advisor chat service.

The core decides; adapters talk to the world. Nothing here performs I/O or
imports a framework: the standard library and msgspec only.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
