"""Transports: what ``create_connection``, ``create_server``, ``start_tls``,
``create_datagram_endpoint`` and ``connect_*_pipe`` return.

* ``stream`` (Cython): the socket stream transport, the hot path of every connection;
* ``network``: connecting, serving and ``sendfile`` on streams; ``server``: ``Server``;
* ``tls``: TLS over a stream (``ssl=``, ``start_tls``);
* ``datagram``, ``pipes``: the datagram and pipe transports, on ``fd_transport``'s
  shared fd-transport base.

Builds on ``pyloop._core``; never imports the toolbox.
"""
