"""A socket opened per invocation and never closed, to a TCP server this example starts.

The server (a listening socket and its accept thread) starts at import: init-time resources are
the baseline, and only what invocations leave behind is reported.
"""

import socket
import threading

_server = socket.create_server(("127.0.0.1", 0))
ADDRESS = _server.getsockname()


def _serve_forever():
    """Answer each client once, then hang up on our side: only the client side leaks."""
    while True:
        try:
            conn, _ = _server.accept()
        except OSError:  # the server was closed
            return
        with conn:
            conn.recv(64)
        # closed before the client's recv() returns: only the client side can leak


threading.Thread(target=_serve_forever, name="example-server", daemon=True).start()
CLIENTS = []


def handler(event, context):
    client = socket.create_connection(ADDRESS)
    client.sendall(b"ping\n")
    client.recv(64)  # b"": the server has hung up
    CLIENTS.append(client)  # a "connection cache" that only ever grows
    return {"statusCode": 200}
