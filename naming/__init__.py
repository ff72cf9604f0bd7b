"""The naming sidecar `ns` (arrives with the naming issue)."""
