"""galaxy-archive: an offline, verifiable mirror of the GOG Galaxy CDN."""

__version__ = "0.1.0"
