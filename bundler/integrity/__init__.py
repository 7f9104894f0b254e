"""Integrity: SHA-256 digests of members (streaming and chunked) and the signing schemes over the manifest.
"""

__all__: list[str] = []  # a namespace: its modules are the API
