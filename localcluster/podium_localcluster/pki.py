"""Certificates and keys for the local control plane, made with `cryptography` (no openssl/cfssl needed).

Everything is signed by one self-made CA that lives in the cluster directory; nothing here is meant to be
trusted outside this machine.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough that a developer's cluster never expires under them; these certs never leave loopback.
VALIDITY = dt.timedelta(days=3650)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class CertSpec:
    """One leaf certificate: who it is (CN, O) and where it may be used (server SANs, client auth)."""

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = True


@dataclass
class CA:
    key: PrivateKey
    cert: x509.Certificate
    issued: list[str] = field(default_factory=list)


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to generate (RSA-2048 costs ~100 ms each) and accepted by every Kubernetes component.
    return ec.generate_private_key(ec.SECP256R1())


def cert_builder(subject: x509.Name, issuer: x509.Name, key: PrivateKey) -> x509.CertificateBuilder:
    """A certificate for ``key`` valid from a few minutes ago (clock skew between processes) for VALIDITY."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Signing only; a CA also signs certificates and revocation lists."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(common_name: str = "podium-local-ca") -> CA:
    key = new_key()
    subject = _name(common_name)
    cert = (
        cert_builder(subject, subject, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(key=key, cert=cert)


def issue(ca: CA, spec: CertSpec) -> tuple[PrivateKey, x509.Certificate]:
    """A leaf key and certificate signed by ``ca``."""
    if not spec.server and not spec.client:
        raise ValueError(f"certificate {spec.name!r} must allow server or client use")
    key = new_key()
    usages = []
    if spec.server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if spec.client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        cert_builder(_name(spec.common_name, spec.organizations), ca.cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in spec.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    ca.issued.append(spec.name)
    return key, cert


def matches(cert: x509.Certificate, spec: CertSpec) -> bool:
    """True if ``cert`` already is what ``spec`` asks for (subject, SANs, usages), so it can be kept."""
    want = _name(spec.common_name, spec.organizations)
    if cert.subject != want:
        return False
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns, ips = set(sans.get_values_for_type(x509.DNSName)), set(sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = set(), set()
    if dns != set(spec.dns_names) or ips != {ipaddress.ip_address(ip) for ip in spec.ip_addresses}:
        return False
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    return (ExtendedKeyUsageOID.SERVER_AUTH in usages) == spec.server and (
        ExtendedKeyUsageOID.CLIENT_AUTH in usages
    ) == spec.client


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def load_ca(directory: Path) -> CA | None:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if not (cert_path.exists() and key_path.exists()):
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path}: unsupported CA key type {type(key).__name__}")
    return CA(key=key, cert=x509.load_pem_x509_certificate(cert_path.read_bytes()))


def ensure_pki(directory: Path, specs: list[CertSpec]) -> CA:
    """Create (once) the CA, the service-account key pair and every leaf in ``specs`` under ``directory``.

    Files that exist and still match their spec are kept, so a restarted cluster keeps its identities and
    existing tokens stay valid.
    """
    ca = load_ca(directory)
    if ca is None:
        ca = new_ca()
        _write(directory / "ca.key", key_pem(ca.key), private=True)
        _write(directory / "ca.crt", cert_pem(ca.cert))
    if not (directory / "sa.key").exists():
        # RSA for service-account tokens: RS256 is what every client library expects to verify.
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(directory / "sa.key", key_pem(sa), private=True)
        _write(directory / "sa.pub", public_key_pem(sa))
    for spec in specs:
        crt, key_file = directory / f"{spec.name}.crt", directory / f"{spec.name}.key"
        # Kept unless the spec changed (e.g. a newer Podium adds a SAN): then the identity is issued again.
        if crt.exists() and key_file.exists() and matches(x509.load_pem_x509_certificate(crt.read_bytes()), spec):
            continue
        key, cert = issue(ca, spec)
        _write(key_file, key_pem(key), private=True)
        _write(crt, cert_pem(cert))
    return ca
