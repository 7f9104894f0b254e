"""The container: the zip archive (reader with safety limits, atomic writer) and the manifest schema.
"""

__all__: list[str] = []  # a namespace: its modules are the API
