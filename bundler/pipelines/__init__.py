"""The pipelines behind the public API: pack, verify, load, and the behaviour check, composed from the
subsystems below them.
"""

__all__: list[str] = []  # a namespace: its modules are the API
