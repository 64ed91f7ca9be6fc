"""Where a plugin serves: hookvisor's Unix socket, or remote mode (contract §2.6), the same
services on TCP with mutual TLS for a supervisor that names the plugin by `endpoint`. Both
servers use it.

Every setting is checked before the server is built, so each mistake is one line naming the
variable (or the argument) and the file: exit 1 for a bad setting, exit 2 for an address that
cannot be bound, as in local mode.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket as socketlib
import ssl
import sys
from dataclasses import dataclass
from typing import Any, NoReturn, Union

import grpc

from . import _process

REMOTE_LISTEN_ENV = "HOOKVISOR_REMOTE_LISTEN"
TLS_CERT_ENV = "HOOKVISOR_TLS_CERT"
TLS_KEY_ENV = "HOOKVISOR_TLS_KEY"
TLS_CLIENT_CA_ENV = "HOOKVISOR_TLS_CLIENT_CA"

#: A PEM file's path (`str` or path-like), or its content (`bytes`).
PemSource = Union[str, "os.PathLike[str]", bytes]

#: gRPC's own SO_REUSEPORT would let the plugin share a port another process already listens on.
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class Remote:
    """Where and how remote mode serves: the listen address, split and checked, and the
    credentials made of the checked PEM files."""

    listen: str
    host: str
    port: int
    credentials: Any  # grpc.ServerCredentials (grpcio ships no types)


def from_env() -> tuple[str | Remote, str]:
    """Where to serve, from the environment, and the configured name (optional in remote mode):
    remote mode's settings when `HOOKVISOR_REMOTE_LISTEN` is set (a bad one exits 1), else the
    Unix socket hookvisor gives, after its cookie check."""
    if REMOTE_LISTEN_ENV not in os.environ:
        return _process.handshake()
    refuse_cookie()
    for var in (TLS_CERT_ENV, TLS_KEY_ENV, TLS_CLIENT_CA_ENV):
        if not os.environ.get(var):
            _process.fail(
                f"{var} is not set; remote mode ({REMOTE_LISTEN_ENV}) needs {TLS_CERT_ENV}, "
                f"{TLS_KEY_ENV} and {TLS_CLIENT_CA_ENV} (PEM files)",
                1,
            )
    remote = settings(
        os.environ[REMOTE_LISTEN_ENV],
        os.environ[TLS_CERT_ENV],
        os.environ[TLS_KEY_ENV],
        os.environ[TLS_CLIENT_CA_ENV],
        names=(REMOTE_LISTEN_ENV, TLS_CERT_ENV, TLS_KEY_ENV, TLS_CLIENT_CA_ENV),
    )
    _process.line_buffered_stdout()
    return remote, os.environ.get(_process.NAME_ENV, "")


def refuse_cookie() -> None:
    """Exits 1 when hookvisor's magic cookie is set too: a plugin hookvisor starts serves on its
    Unix socket, never on the network."""
    if _process.MAGIC_COOKIE_ENV in os.environ:
        _process.fail(
            f"{_process.MAGIC_COOKIE_ENV} and {REMOTE_LISTEN_ENV} are both set: a plugin "
            "hookvisor starts serves on its Unix socket; remote mode is for a plugin the operator "
            "starts without the cookie",
            1,
        )


def settings(
    listen: str,
    cert: PemSource,
    key: PemSource,
    client_ca: PemSource,
    names: tuple[str, str, str, str] = ("listen", "cert", "key", "client_ca"),
) -> Remote:
    """Checks the listen address and the PEM sources (the server's certificate chain, its key,
    the CA client certificates must chain to) and builds the credentials; exits 1 on a bad one.
    `names`: what messages call the four (the variables, or `serve_remote`'s arguments)."""
    listen_name, cert_name, key_name, ca_name = names
    host, port = _split(listen_name, listen)
    cert_pem = _read(cert_name, cert, "CERTIFICATE")
    key_pem = _read(key_name, key, "PRIVATE KEY")
    ca_pem = _read(ca_name, client_ca, "CERTIFICATE")
    _check_ca(ca_name, client_ca, ca_pem)
    _check_pair(cert_name, cert, key_name, key)
    credentials = grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )
    return Remote(listen, host, port, credentials)


def bind(server: Any, remote: Remote) -> str:
    """Adds `remote`'s TLS port to `server` (either kind); returns the address bound, as
    `host:port` (`[v6]:port`), or exits 2."""
    try:
        infos = socketlib.getaddrinfo(
            remote.host, remote.port, type=socketlib.SOCK_STREAM, flags=socketlib.AI_NUMERICSERV
        )
        family, _, _, _, sockaddr = infos[0]
        ip = str(sockaddr[0])
        # One bind of our own first, so an error is Python's precise OSError rather than
        # gRPC's "Failed to bind" and its log line.
        probe = socketlib.socket(family, socketlib.SOCK_STREAM)
        try:
            probe.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
        finally:
            probe.close()
        host = f"[{ip}]" if family == socketlib.AF_INET6 else ip
        port = server.add_secure_port(f"{host}:{remote.port}", remote.credentials)
        if port == 0:
            raise RuntimeError("the address was refused")
    except (OSError, RuntimeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else None
        what = reason or _process.describe_exception(e)
        _process.fail(f"cannot listen on {remote.listen}: {what}", 2)
    return f"{host}:{port}"


def add_port(server: Any, target: str | Remote) -> str | None:
    """Adds the port `server` (either kind) serves on: hookvisor's Unix socket (a bind error
    exits 2), or remote mode's TLS port, whose bound address it returns for `announce`."""
    if isinstance(target, Remote):
        return bind(server, target)
    try:
        _process.check_bindable(target)
        if server.add_insecure_port(f"unix:{target}") == 0:
            raise RuntimeError("the address was refused")
    except (OSError, RuntimeError) as e:
        _process.bind_failed(target, e)
    return None


def announce(address: str) -> None:
    """The line tests and operators wait for, once the server listens."""
    line = f"hookvisor plugin listening on {address} (TLS, client certificates required)"
    print(line, file=sys.stderr, flush=True)


def _split(name: str, listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address needs its brackets
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        _process.fail(
            f"{name} must be HOST:PORT (port 0 picks one; IPv6 as [ADDRESS]:PORT), got {listen!r}",
            1,
        )
    return host, int(port)


def _where(name: str, source: PemSource) -> str:
    """How a message names a source: the variable or argument and the file."""
    if isinstance(source, bytes):
        return f"{name} (PEM given as bytes)"
    return f"{name} file {os.fspath(source)}"


def _read(name: str, source: PemSource, label: str) -> bytes:
    """The PEM text of `source`; exits 1 unless it is readable and holds at least one `label`
    block (any `... PRIVATE KEY` for a key) whose base64 decodes."""
    if isinstance(source, bytes):
        data = source
    else:
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as e:
            _process.fail(f"cannot read {_where(name, source)}: {e.strerror or e}", 1)
    found = False
    for match in _PEM_BLOCK.finditer(data):
        kind = match.group(1).decode()
        if kind == "ENCRYPTED PRIVATE KEY" and label == "PRIVATE KEY":
            _bad(name, source, "the key is encrypted; give it unencrypted (mode 0600)")
        if kind == label or (label == "PRIVATE KEY" and kind.endswith(" PRIVATE KEY")):
            try:
                base64.b64decode(b"".join(match.group(2).split()), validate=True)
            except binascii.Error:
                _bad(name, source, f"a {kind} block is not valid base64")
            found = True
    if not found:
        _bad(name, source, f"no PEM {label} block")
    return data


def _check_ca(name: str, source: PemSource, data: bytes) -> None:
    try:
        ssl.create_default_context(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as e:
        _bad(name, source, f"not a usable CA certificate ({_ssl_reason(e)})")


def _check_pair(cert_name: str, cert: PemSource, key_name: str, key: PemSource) -> None:
    """Loads the chain with its key, so a key of another certificate is named now rather than
    failing every handshake. (The standard library loads only files: given bytes, gRPC checks
    it when the port is added.)"""
    if isinstance(cert, bytes) or isinstance(key, bytes):
        return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as e:
        reason = _ssl_reason(e)
        if "KEY_VALUES_MISMATCH" in reason:
            _process.fail(f"{_where(key_name, key)} is not the key of {_where(cert_name, cert)}", 1)
        _process.fail(
            f"{_where(cert_name, cert)} with {_where(key_name, key)} cannot be loaded: {reason}", 1
        )


def _ssl_reason(e: Exception) -> str:
    if isinstance(e, ssl.SSLError) and e.reason:
        return f"{e.library or 'SSL'}: {e.reason}"
    return _process.one_line(str(e))


def _bad(name: str, source: PemSource, why: str) -> NoReturn:
    _process.fail(f"{_where(name, source)} is not a valid PEM file: {why}", 1)
