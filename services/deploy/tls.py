"""`cpmon devices provision --tls`: a private CA and the broker's server certificate.

Devices trust the CA (`ca.crt`), not the server certificate, so the certificate can be
renewed (re-run with `--renew-server`) without touching a single device. The CA key is
written beside it, owner-only: keep it offline once the server certificate exists.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.deploy.provision import write_private

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity that common TLS clients accept


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def tls_files(cert_dir: Path) -> TlsFiles:
    return TlsFiles(
        cert_dir / "ca.crt", cert_dir / "ca.key", cert_dir / "server.crt", cert_dir / "server.key"
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _make_ca(
    files: TlsFiles, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("checkpoint-monitor broker CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    write_private(files.ca_key, _pem_key(key).decode("ascii"))
    files.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _load_ca(files: TlsFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{files.ca_key}: not the EC key this command writes")
    return cert, key


def provision_tls(cert_dir: Path, hosts: Iterable[str], renew_server: bool = False) -> TlsFiles:
    """Create the CA (once) and a server certificate for `hosts` (when missing, or
    when `renew_server`). Returns the paths; the broker needs ca.crt, server.*."""
    names = [host.strip() for host in hosts if host.strip()]
    if not names:
        raise ValueError("name at least one broker host (--tls-hosts mqtt.example.org)")
    cert_dir.mkdir(parents=True, exist_ok=True)
    files = tls_files(cert_dir)
    now = dt.datetime.now(dt.UTC)
    if files.ca_cert.exists() and files.ca_key.exists():
        ca_cert, ca_key = _load_ca(files)
    else:
        ca_cert, ca_key = _make_ca(files, now)
        renew_server = True
    if files.server_cert.exists() and not renew_server:
        return files
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_alt_name(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    write_private(files.server_key, _pem_key(key).decode("ascii"))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files
