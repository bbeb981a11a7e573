"""Socket set-up shared by servers and datagram endpoints.

* ``set_reuse_port``: ``SO_REUSEPORT``, with asyncio's ValueErrors where the
  platform lacks it;
* Unix socket files: ``remove_stale_unix_socket`` unlinks the file a previous
  process left behind at a path about to be bound; Linux abstract-namespace
  addresses (a leading NUL) have no file and are never stat'ed or unlinked;
* ``os_error_text``: how asyncio words an OSError inside its own messages.
"""

import logging
import os
import socket
import stat
import sys

logger = logging.getLogger("asyncio")

_PY313 = sys.version_info >= (3, 13)


def os_error_text(exc):
    """How asyncio words an OSError inside its own messages."""
    if _PY313:
        return str(exc).lower()
    return (exc.strerror or str(exc)).lower()


def set_reuse_port(sock):
    """Set ``SO_REUSEPORT`` on ``sock`` (ValueError where it is missing)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port not supported by socket module")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError("reuse_port not supported by socket module, "
                         "SO_REUSEPORT defined but not implemented.")


def is_abstract_or_unnamed(path):
    """True for Linux abstract-namespace addresses (leading NUL, str or
    bytes) and for the empty address of an unbound socket."""
    return not path or path[0] in (0, "\x00")


def remove_stale_unix_socket(path):
    """Unlink a socket file left behind at ``path`` so that bind succeeds;
    leave anything that is not a socket alone (bind then fails), and an
    abstract or empty address, which has no file, untouched."""
    if is_abstract_or_unnamed(path):
        return
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        # The directory may let us create a socket without letting us stat.
        logger.error("Unable to check or remove stale UNIX socket %r: %r",
                     path, err)
