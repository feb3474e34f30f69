"""Archive-service adapter: analysis results over HTTP (``GET /archive/results/{id}``)."""

from adapters.archive.client import ArchiveClient, build_archive_http_client

__all__ = ["ArchiveClient", "build_archive_http_client"]
