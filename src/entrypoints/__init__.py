"""Entrypoints: the composition root, the HTTP app and the ``chatcore`` command."""
