"""mdxmix: learned time-varying mixing of music separators (MDX-Mixer).

`from mdxmix import Separator` is the Python API; it is imported on first use so that
`import mdxmix` (and `mdxmix --help`) stays fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Separator", "__version__"]


def __getattr__(name: str):
    if name == "Separator":
        from .pipeline import Separator

        return Separator
    raise AttributeError(f"module 'mdxmix' has no attribute {name!r}")
