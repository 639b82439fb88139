"""The socket ``agenitry serve`` binds: connections accepted from it send answers at once.

asyncio turns Nagle's algorithm off (``TCP_NODELAY``) only on connections accepted from a
socket that names TCP as its protocol. One that did not made every keep-alive answer wait
for the client's delayed acknowledgement (about 40 ms a request, whatever the route).
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from agenitry.gateway.server import listen, protocol


async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]


def test_connections_accepted_from_the_served_socket_have_nagle_off() -> None:
    listener = listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=protocol(10), lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        for _ in range(3000):  # until it listens (it has not accepted anything yet otherwise)
            if server.started:
                break
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 204")
            accepted = [connection.transport.get_extra_info("socket") for connection in server.server_state.connections]
            assert len(accepted) == 1
            assert accepted[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()
