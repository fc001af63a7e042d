#!/usr/bin/env python3
"""Certificates for Dask over TLS in the production profile: one CA, one pair per role.

``make_certs(state)`` writes, under ``<state>/tls``, a private certificate authority and
a certificate + key for each Dask role (scheduler, worker, client), all signed by that
CA, and returns the ``RESISTOMICS_CLUSTER__TLS_*`` settings that point at them. Keys are
mode 0600. Every certificate is good for both ends of a connection (server and client
auth): a worker listens for its peers and connects to the scheduler, the scheduler
connects back to workers. distributed verifies the chain, not the host name, so the
names in the certificates are informative only.

Calling it again reuses certificates that are still valid for a day; otherwise (or when
a file is missing) the whole set is made anew, so pairs never mix CAs.

    python deploy/production/tls.py STATE_DIR     # prints the settings as KEY=VALUE

Standard library at import; ``cryptography`` (a pinned dependency of the test and
production environments) is imported when certificates are made.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Any

__all__ = ["ROLES", "make_certs"]

ROLES = ("scheduler", "worker", "client")
VALID_DAYS = 30
RENEW_BEFORE = dt.timedelta(days=1)


def _paths(folder: Path) -> dict[str, Path]:
    paths = {"ca": folder / "ca.pem", "ca_key": folder / "ca-key.pem"}
    for role in ROLES:
        paths[role] = folder / f"{role}.pem"
        paths[f"{role}_key"] = folder / f"{role}-key.pem"
    return paths


def _settings(paths: dict[str, Path]) -> dict[str, str]:
    env = {"RESISTOMICS_CLUSTER__TLS_CA_FILE": str(paths["ca"])}
    for role in ROLES:
        env[f"RESISTOMICS_CLUSTER__TLS_{role.upper()}_CERT"] = str(paths[role])
        env[f"RESISTOMICS_CLUSTER__TLS_{role.upper()}_KEY"] = str(paths[f"{role}_key"])
    return env


def _still_valid(paths: dict[str, Path]) -> bool:
    from cryptography import x509

    if not all(p.is_file() for p in paths.values()):
        return False
    horizon = dt.datetime.now(dt.UTC) + RENEW_BEFORE
    for name in ("ca", *ROLES):
        cert = x509.load_pem_x509_certificate(paths[name].read_bytes())
        if cert.not_valid_after_utc < horizon:
            return False
    return True


def _write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only (0600 from creation, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _issue(paths: dict[str, Path]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pem_key(key: Any) -> bytes:
        out: bytes = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return out

    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate clock skew
    until = now + dt.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "resistomics"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"resistomics dask CA {socket.gethostname()}"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    names = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.DNSName(socket.gethostname()),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
    )
    issued: dict[str, tuple[bytes, bytes]] = {}
    for role in ROLES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "resistomics"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"resistomics dask {role}"),
                    ]
                )
            )
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(names, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        issued[role] = (cert.public_bytes(serialization.Encoding.PEM), pem_key(key))
    # keys first, certificates last: a set is complete only once every file is there
    _write_private(paths["ca_key"], pem_key(ca_key))
    for role, (cert_pem, key_pem) in issued.items():
        _write_private(paths[f"{role}_key"], key_pem)
        _write_public(paths[role], cert_pem)
    _write_public(paths["ca"], ca.public_bytes(serialization.Encoding.PEM))


def make_certs(state: Path) -> dict[str, str]:
    """Make (or reuse) the CA and the scheduler/worker/client pairs under ``state/tls``.

    Returns the environment variables of the cluster's TLS settings
    (``RESISTOMICS_CLUSTER__TLS_CA_FILE`` and ``..._TLS_<ROLE>_CERT`` / ``_KEY`` for
    ``SCHEDULER``, ``WORKER`` and ``CLIENT``), absolute paths.
    """
    folder = Path(state).absolute() / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    paths = _paths(folder)
    if not _still_valid(paths):
        for p in paths.values():
            p.unlink(missing_ok=True)
        _issue(paths)
    return _settings(paths)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tls.py STATE_DIR")
    for k, v in make_certs(Path(sys.argv[1])).items():
        print(f"{k}={v}")
