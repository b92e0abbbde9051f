"""The kubelet's log endpoint, `/containerLogs/<ns>/<pod>/<container>`, over HTTPS, so `kubectl logs` works.

The API server connects to Node InternalIP:daemonEndpoints.kubeletEndpoint.Port. It does not verify the node's
serving certificate unless started with --kubelet-certificate-authority, so a self-signed one is enough; with
`client_ca` the node requires the API server's client certificate signed by that CA.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from podium_localcluster.pki import cert_builder, cert_pem, key_pem, new_key


def self_signed(cert_dir: Path, name: str) -> tuple[Path, Path]:
    cert_path, key_path = cert_dir / "kubelet.crt", cert_dir / "kubelet.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    cert_dir.mkdir(parents=True, exist_ok=True)
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    san = x509.SubjectAlternativeName([x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = cert_builder(subject, subject, key).add_extension(san, critical=False).sign(key, hashes.SHA256())
    key_path.write_bytes(key_pem(key))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_pem(cert))
    return cert_path, key_path


def find_log(state_dir: Path, namespace: str, pod: str, container: str) -> Path | None:
    """The newest pod directory of that name wins: a recreated pod (new UID) shadows the old one."""
    dirs = sorted((state_dir / "pods").glob(f"{namespace}_{pod}_*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for d in dirs:
        if d.name.count("_") >= 2 and (d / f"{container}.log").exists():
            return d / f"{container}.log"
    return None


def _read_range(path: Path, start: int, end: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(end - start)


def tail(data: bytes, lines: int) -> bytes:
    if lines < 0:
        return data
    if lines == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def make_app(state_dir: Path) -> web.Application:
    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        path = find_log(state_dir, ns, pod, container)
        if path is None:
            raise web.HTTPNotFound(text=f"no logs for container {container!r} of pod {ns}/{pod} on this node\n")
        data = await asyncio.to_thread(path.read_bytes)
        data = tail(data, int(request.query.get("tailLines", "-1")))
        if "limitBytes" in request.query:
            data = data[: int(request.query["limitBytes"])]
        follow = request.query.get("follow") in ("true", "1")
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(data)
        if follow:
            offset = path.stat().st_size
            while True:  # ends when the client goes away (write raises) or the file is removed
                await asyncio.sleep(0.5)
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    break
                if size > offset:
                    chunk = await asyncio.to_thread(_read_range, path, offset, size)
                    offset = size
                    await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", container_logs)
    app.router.add_get("/healthz", healthz)
    return app


def can_serve(cert_file: str) -> bool:
    """A certificate usable as the node's serving cert: serverAuth and a SAN for 127.0.0.1."""
    import ipaddress

    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    loopback = ipaddress.ip_address("127.0.0.1")
    return x509.ExtendedKeyUsageOID.SERVER_AUTH in eku and loopback in san.get_values_for_type(x509.IPAddress)


async def serve(
    state_dir: Path,
    name: str,
    host: str,
    port: int,
    client_ca: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> tuple[web.AppRunner, int]:
    if cert_file and key_file:
        cert, key = Path(cert_file), Path(key_file)
    else:
        cert, key = self_signed(state_dir / "pki", name)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(make_app(state_dir), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ctx)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    actual = int(sockets[0].getsockname()[1]) if sockets else port
    return runner, actual
