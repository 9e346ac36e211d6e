"""A TCP server that tells who it is: for every line received it answers with its name.

    python tests/support/namedserver.py NAME ADDRESS PORT
"""

import socket
import sys
import threading


def serve(conn: socket.socket, name: bytes) -> None:
    with conn:
        f = conn.makefile("rb")
        for _line in f:
            try:
                conn.sendall(name + b"\n")
            except OSError:
                return


def main() -> None:
    name, address, port = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((address, port))
    srv.listen(1024)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, name), daemon=True).start()


if __name__ == "__main__":
    main()
