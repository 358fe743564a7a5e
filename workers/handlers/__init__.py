"""Task bodies, one module per job kind; importing this package registers them all."""

from workers.handlers import analysis, download, processing  # noqa: F401
