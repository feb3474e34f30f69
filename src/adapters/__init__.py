"""Adapters: chatcore's ports implemented on real (and in-memory) technology."""
