"""The environment: capture of the running interpreter and packages, requirements inference, the version
policy, and target environments (requirements files, pip freeze, pylock.toml).
"""

__all__: list[str] = []  # a namespace: its modules are the API
