"""Transports: what ``create_connection``, ``create_server``, ``start_tls``,
``create_datagram_endpoint`` and ``connect_*_pipe`` return, and how
connections are made and served.

* ``stream`` (Cython): the socket stream transport, the hot path of every connection;
* ``connect``: ``create_connection`` (Happy Eyeballs), ``create_unix_connection``,
  ``connect_accepted_socket``;
* ``server``: ``create_server``/``create_unix_server``, the accept loop, ``Server``;
* ``tls``: TLS over a stream (``ssl=``, ``start_tls``), on ``tls_protocol``
  (Cython): pyloop's own TLS layer over ``ssl.MemoryBIO``;
* ``sendfile``: ``loop.sendfile`` over a transport and ``loop.sock_sendfile``;
* ``datagram``, ``pipes``: the datagram and pipe transports, on ``fd_transport``'s
  shared fd-transport base;
* ``flow``: write flow control (water marks) for every transport;
* ``sockets``: socket set-up shared by servers and datagram endpoints
  (``SO_REUSEPORT``, stale Unix socket files).
* ``_syscalls`` (Cython): the machinery's own system calls made from C (sendfile,
  the Unix socket file checks), invisible to blocking-call detectors.

Each loop service here is a mixin of ``pyloop.Loop`` whose docstring says what it
needs from the loop.  Builds on ``pyloop._core``; never imports the toolbox.
"""
