"""The parts of a plugin process both servers share: the handshake environment, the plugin's init,
the socket file, the drain, and the count of handlers still running."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket as socketlib
import stat
import sys
import threading
from typing import Any, NoReturn

from .errors import ConfigError
from .info import Info

MAGIC_COOKIE_ENV = "HOOKVISOR_MAGIC_COOKIE"
MAGIC_COOKIE = "d7f0c2a4-hookvisor-plugin-v1"
SOCKET_ENV = "HOOKVISOR_PLUGIN_SOCKET"
NAME_ENV = "HOOKVISOR_PLUGIN_NAME"

#: What a process started by hand, without hookvisor's environment, prints before exiting 1.
NOT_BY_HAND = (
    "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), "
    "not run by hand"
)

#: How long calls in flight may finish after SIGTERM; shorter than the supervisor's default grace
#: period (2000 ms) so a hung handler cannot turn a clean stop into a SIGKILL.
DRAIN_LIMIT_S = 1.5

#: The gRPC service name the health service reports besides "".
PLUGIN_SERVICE = "hookvisor.v1.Plugin"


def fail(message: str, status: int) -> NoReturn:
    """One line on stderr, then exit with `status`."""
    print(message, file=sys.stderr, flush=True)
    sys.exit(status)


def handshake() -> tuple[str, str]:
    """The socket path and configured name from hookvisor's environment, or exit 1."""
    if os.environ.get(MAGIC_COOKIE_ENV) != MAGIC_COOKIE:
        fail(NOT_BY_HAND, 1)
    socket = os.environ.get(SOCKET_ENV)
    if socket is None:
        fail(f"{SOCKET_ENV} is not set; hookvisor sets it when it starts a plugin", 1)
    if not os.path.isabs(socket):
        fail(f"{SOCKET_ENV} must be an absolute path, got {socket!r}", 1)
    line_buffered_stdout()
    return socket, os.environ.get(NAME_ENV, "")


def line_buffered_stdout() -> None:
    """Output written by the plugin should reach a log as it happens, not when a pipe buffer
    fills."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)


def init(plugin: Any, kind: type[Any]) -> tuple[Any, Info]:
    """Builds the plugin (when given a factory rather than a `kind`) and reads its info; any
    error exits 1."""
    try:
        built: Any = plugin if isinstance(plugin, kind) else plugin()
        if not isinstance(built, kind):
            raise TypeError(f"expected a {kind.__module__}.{kind.__qualname__}, got {built!r}")
        info = built.info()
        if not isinstance(info, Info):
            raise TypeError(f"info() must return an Info, got {type(info).__name__}")
    except ConfigError as e:
        fail(one_line(str(e)), 1)
    except Exception as e:
        fail(f"cannot start the plugin: {describe_exception(e)}", 1)
    return built, info


def describe(info: Info, configured_name: str) -> Info:
    """`info` with the configured name when the plugin gave none."""
    return info if info.name else Info(configured_name, info.version, info.hooks)


def remove_stale_socket(path: str) -> None:
    """Removes a socket left at `path` by an earlier run; never any other kind of file."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def check_bindable(path: str) -> None:
    """Binds and unbinds `path` once, so a bind error is one precise `OSError` from Python
    rather than gRPC's vaguer error and its log line; a stale socket there is removed first."""
    remove_stale_socket(path)
    if os.path.lexists(path):
        raise FileExistsError(
            errno.EEXIST, "a file that is not a socket is in the way (left untouched)"
        )
    probe = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    try:
        probe.bind(path)
        os.unlink(path)
    finally:
        probe.close()


def bind_failed(path: str, error: Exception) -> NoReturn:
    """Reports a bind error in one line and exits 2."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else None
    fail(f"cannot bind the plugin socket {path}: {reason or describe_exception(error)}", 2)


def remove_socket(path: str) -> None:
    """Removes the plugin's socket at exit (only if it is still a socket)."""
    try:
        remove_stale_socket(path)
    except OSError as e:
        print(f"cannot remove the plugin socket {path}: {e}", file=sys.stderr, flush=True)


def signal_pipe() -> int:
    """A pipe that receives one byte (the signal number) per SIGTERM or SIGINT.

    Python's own C-level handler writes to the wakeup fd, so the main thread (or the event loop)
    can wait on the pipe with no race between checking a flag and waiting for it. The Python-level
    handlers do nothing and stay installed until the process exits, so a second signal during the
    drain cannot kill the process with a signal status.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: None)
    return read_end


def announce_stop(signum: int) -> None:
    """The one line printed when a stop signal arrives: on stdout, which hookvisor logs at info
    (a stop it asked for is no warning). A stdout nobody reads any more never fails the exit."""
    name = signal.Signals(signum).name
    line = f"received {name}; finishing calls in flight and exiting"
    try:
        print(line, flush=True)
    except (OSError, ValueError):
        # EPIPE (the reader is gone) or a closed file object: the line is lost, and the text left
        # in the buffer must not fail the flush at exit, so stdout goes to /dev/null from now on.
        _stdout_to_devnull()


def _stdout_to_devnull() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def exit_now(status: int) -> NoReturn:
    """Exits without waiting for handler threads that never returned."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(status)


def one_line(text: str) -> str:
    """`text` on one line, so hookvisor logs it as one message."""
    return " ".join(text.split()) or "(no message)"


def describe_exception(e: BaseException) -> str:
    """`Type: message` on one line."""
    message = one_line(str(e)) if str(e) else ""
    return f"{type(e).__name__}: {message}" if message else type(e).__name__


class InFlight:
    """Counts hook handlers still running, so the drain knows whether any is stuck."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def __enter__(self) -> None:
        with self._lock:
            self._count += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._count -= 1

    @property
    def count(self) -> int:
        """How many handlers are running now."""
        with self._lock:
            return self._count
