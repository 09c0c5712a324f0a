"""Who may call a distributed search's chief: a shared token on every gRPC call.

KerasTuner's chief serves the oracle over gRPC to whoever reaches its port.
Here the chief requires a token, and workers present it:

    token     the first of: a file given by the user (`token_file`, the CLI's
              --token-file); the environment variable FLATNAS_TF_TOKEN; the
              file `token` in the search's project directory, which the chief
              writes (32 random bytes, hex, mode 0600, atomically) when none
              exists and workers on the shared directory read (waiting up to
              `TOKEN_WAIT_S` for a chief that has not started yet)
    chief     a gRPC server interceptor compares the call's `authorization`
              metadata with "Bearer <token>" (constant-time); any other call is
              answered UNAUTHENTICATED with a line saying what to do, before
              KerasTuner's servicer (and so the oracle) sees it
    worker    KerasTuner's oracle client's channel is wrapped by a client
              interceptor that adds the metadata to every call

A token file that other users can read is used, with a warning. The token
keeps out processes that cannot read it; it is sent in clear text unless the
connection uses TLS (`TLS`: the chief's certificate and key, the certificate
workers trust), which an untrusted network needs.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
import secrets
import stat
import time
import warnings
from pathlib import Path

from flatnas_tf.persistence import storage

__all__ = [
    "TLS",
    "TOKEN_ENV",
    "TOKEN_FILE",
    "TOKEN_WAIT_S",
    "TokenError",
    "search_token",
    "token_check",
    "authorization",
]

#: The environment variable a token may come from.
TOKEN_ENV = "FLATNAS_TF_TOKEN"
#: The token file the chief writes in its project directory.
TOKEN_FILE = "token"
_HEADER = "authorization"


class TokenError(ValueError):
    """No token where one is needed, or an unreadable one."""


def _read(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        warnings.warn(
            f"{path} can be read by other users (mode {mode:#o}); run `chmod 600 {path}`.",
            stacklevel=3,
        )
    token = path.read_text().strip()
    if not token:
        raise TokenError(f"the token file {path} is empty; write a token into it or delete it.")
    return token


#: Seconds a worker waits for the chief to write the token file.
TOKEN_WAIT_S = 300.0


def search_token(
    project_dir: str | os.PathLike,
    token_file: str | os.PathLike | None = None,
    create: bool = False,
    wait_s: float = 0.0,
) -> str:
    """The token of a distributed search (see the module docstring for the order).

    Args:
        project_dir: The search's project directory (shared by chief and workers).
        token_file: A file holding the token, if the user gave one.
        create: Write a new token file in `project_dir` when there is no token
            (the chief); False: a missing token is an error (a worker).
        wait_s: Without `create`, seconds to wait for the chief to write the
            token file before the error.

    Returns:
        The token.

    Raises:
        TokenError: `token_file` missing or empty, or no token and not `create`.

    Example:
    ```python
    token = search_token("runs/c10/search", create=True)  # the chief
    ```
    """
    if token_file is not None:
        path = Path(token_file)
        if not path.is_file():
            raise TokenError(f"the token file {path} does not exist; check --token-file.")
        return _read(path)
    if os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip()
    path = Path(project_dir) / TOKEN_FILE
    deadline = time.monotonic() + (0.0 if create else wait_s)
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    if path.is_file():
        return _read(path)
    if not create:
        raise TokenError(
            f"no token for this search: {path} does not exist. Start the chief first (it "
            f"writes one there), or give the chief's token with --token-file or {TOKEN_ENV}."
        )
    token = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_path(path, mode=0o600) as temporary:
        temporary.write_text(token + "\n")
    return token


def token_check(token: str):
    """The chief's gRPC server interceptor: calls without `token` are refused.

    Args:
        token: The search's token.

    Returns:
        A `grpc.ServerInterceptor`.
    """
    import grpc

    expected = authorization(token)[1].encode()

    def refuse(request, context):
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "flatnas-tf: this search's chief refused a call without its token; give the "
            f"worker the chief's token (the file {TOKEN_FILE} in the search directory, "
            f"--token-file or {TOKEN_ENV}).",
        )

    refusal = grpc.unary_unary_rpc_method_handler(refuse)

    class TokenCheck(grpc.ServerInterceptor):
        def intercept_service(self, continuation, handler_call_details):
            presented = dict(handler_call_details.invocation_metadata or ()).get(_HEADER, "")
            if hmac.compare_digest(presented.encode(), expected):
                return continuation(handler_call_details)
            return refusal

    return TokenCheck()


def authorization(token: str) -> tuple[str, str]:
    """The gRPC metadata pair a worker's calls carry (`distributed.connect` adds it)."""
    return (_HEADER, f"Bearer {token}")


@dataclasses.dataclass(frozen=True)
class TLS:
    """PEM files of a search served over TLS (gRPC's own credentials).

    Attributes:
        certificate: The chief's certificate (chain); its names must include
            the address workers connect to.
        key: The chief's private key.
        trusted: What workers trust: the CA that signed `certificate`, or the
            certificate itself if self-signed.

    Example:
    ```python
    FlatNASTuner(..., tls=TLS("chief.pem", "chief.key", trusted="ca.pem"))
    ```
    """

    certificate: str | os.PathLike | None = None
    key: str | os.PathLike | None = None
    trusted: str | os.PathLike | None = None

    def __post_init__(self):
        if (self.certificate is None) != (self.key is None):
            raise TokenError("TLS needs the chief's certificate and its key together.")
        for name in ("certificate", "key", "trusted"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise TokenError(f"the TLS {name} file {path} does not exist.")

    def server_credentials(self):
        """The chief's `grpc.ServerCredentials`."""
        import grpc

        if self.certificate is None:
            raise TokenError("a chief served over TLS needs its certificate and key.")
        pair = (Path(self.key).read_bytes(), Path(self.certificate).read_bytes())
        return grpc.ssl_server_credentials([pair])

    def channel_credentials(self):
        """A worker's `grpc.ChannelCredentials`."""
        import grpc

        if self.trusted is None:
            raise TokenError("a worker of a search served over TLS needs the trusted certificate.")
        return grpc.ssl_channel_credentials(root_certificates=Path(self.trusted).read_bytes())
