"""Loaded by Python programs in pods run by `podium-cluster node` (the node puts this folder on PYTHONPATH).

Pods share the host's network stack; each has its own loopback address (PODIUM_POD_IP). A server that binds the
wildcard (0.0.0.0, "" or ::) would take the port on every address and collide with the same server in another
pod, so wildcard binds are rewritten to the pod's address.
"""

import os
import socket

_POD_IP = os.environ.get("PODIUM_POD_IP", "")

if _POD_IP:
    _orig_bind = socket.socket.bind

    def _pod_bind(self, address):  # type: ignore[no-untyped-def]
        if isinstance(address, tuple) and len(address) >= 2:
            host = address[0]
            if self.family == socket.AF_INET and host in ("", "0.0.0.0"):
                address = (_POD_IP, *address[1:])
            elif self.family == socket.AF_INET6 and host in ("", "::", "::0"):
                # Dual-stack socket: the IPv4-mapped form of the pod address.
                try:
                    self.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                except OSError:
                    pass
                address = ("::ffff:" + _POD_IP, *address[1:])
        return _orig_bind(self, address)

    socket.socket.bind = _pod_bind  # type: ignore[method-assign]
