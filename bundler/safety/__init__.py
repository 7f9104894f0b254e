"""Safety: the static scan of pickle/joblib/skops payloads, the allowlist, the restricted unpickler and the
state validators that run before a model is returned.
"""

__all__: list[str] = []  # a namespace: its modules are the API
