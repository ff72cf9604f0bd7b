"""The naming sidecar `ns`: a registry of names (`:Pyro.EventService`) to endpoints.

A pure registry (`naming.registry`) over pluggable storage (`naming.records`: the protocol and
memory; `naming.storage`: sqlite), a request handler (`naming.service`) and a ZeroMQ shell
(`naming.server`).
"""

__version__ = "0.1.0"
