"""Sizing the event server's process for its subscribers: descriptors and ZeroMQ's socket table.

The shell side of es.capacity, which decides the figure from the limits this module reads (and
raises, as far as the hard limit allows).
"""

from __future__ import annotations

import contextlib
import resource

import zmq

from es.capacity import Capacity, plan, wanted_descriptors

__all__ = ["size_for"]


def size_for(ctx: zmq.Context[zmq.Socket[bytes]], subscribers: int) -> Capacity:
    """Raise the soft descriptor limit as far as `subscribers` need (and the hard limit allows),
    size ZeroMQ's socket table from what that allows, and say what it allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = wanted_descriptors(subscribers)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    descriptors = wanted if soft == resource.RLIM_INFINITY else soft
    capacity = plan(subscribers, descriptors, ctx.get(zmq.SOCKET_LIMIT))
    ctx.set(zmq.MAX_SOCKETS, capacity.sockets)
    return capacity
