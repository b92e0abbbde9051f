"""The node's self-signed serving certificate for `kubectl logs`: loadable by ssl, names the node, made once."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from cryptography import x509

from podium_localcluster.node.logserver import self_signed


def test_self_signed_cert_serves_tls_for_the_node_name_and_loopback(tmp_path: Path) -> None:
    cert_path, key_path = self_signed(tmp_path / "certs", "podium-node")
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)  # key matches cert
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["podium-node"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.issuer == cert.subject
    assert key_path.stat().st_mode & 0o777 == 0o600


def test_an_existing_cert_is_kept(tmp_path: Path) -> None:
    first = self_signed(tmp_path, "n1")
    before = first[0].read_bytes()
    assert self_signed(tmp_path, "n1") == first
    assert first[0].read_bytes() == before
