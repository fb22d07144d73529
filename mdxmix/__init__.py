"""mdxmix: learned time-varying mixing of music separators (MDX-Mixer)."""
__version__ = "0.1.0"
