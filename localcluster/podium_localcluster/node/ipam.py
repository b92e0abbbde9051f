"""Loopback pod addresses: every pod gets its own 127.x.y.z so pods can listen on the same port side by side."""

from __future__ import annotations

import ipaddress


class PodIPExhausted(RuntimeError):
    pass


class PodIPAllocator:
    """Hands out addresses from a loopback range, one per pod UID, and takes them back when the pod ends."""

    def __init__(self, cidr: str = "127.64.0.0/16") -> None:
        net = ipaddress.ip_network(cidr, strict=True)
        if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"pod CIDR {cidr!r} must be an IPv4 range inside 127.0.0.0/8 (loopback)")
        self.network = net
        self._by_uid: dict[str, str] = {}
        self._used: set[str] = set()
        # Start after the first address so x.y.0.0 and x.y.0.1 (often "the node") are never a pod.
        self._next = int(net.network_address) + 2

    def allocate(self, uid: str) -> str:
        if uid in self._by_uid:
            return self._by_uid[uid]
        first = int(self.network.network_address) + 2
        last = int(self.network.broadcast_address) - 1
        size = last - first + 1
        for i in range(size):
            candidate = str(ipaddress.IPv4Address(first + (self._next - first + i) % size))
            if candidate not in self._used:
                self._used.add(candidate)
                self._by_uid[uid] = candidate
                # Round-robin so a just-released address is not reused at once (stale clients, TIME_WAIT).
                self._next = int(ipaddress.IPv4Address(candidate)) + 1
                return candidate
        raise PodIPExhausted(f"no free pod address left in {self.network}")

    def reserve(self, uid: str, ip: str) -> None:
        """Keep the address a pod already reports (node restart) so its podIP does not change."""
        if ipaddress.IPv4Address(ip) not in self.network:
            raise ValueError(f"{ip} is outside the pod range {self.network}")
        if ip in self._used and self._by_uid.get(uid) != ip:
            raise ValueError(f"{ip} is already used by another pod")
        self._used.add(ip)
        self._by_uid[uid] = ip

    def release(self, uid: str) -> None:
        ip = self._by_uid.pop(uid, None)
        if ip is not None:
            self._used.discard(ip)

    def get(self, uid: str) -> str | None:
        return self._by_uid.get(uid)
