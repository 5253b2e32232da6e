"""The DynamoDB emulator for local runs and tests: moto's server, serving
one request at a time.

moto's own `moto_server` is multi-threaded, and its TransactWriteItems is
not atomic under concurrency: it copies the tables it touches, applies the
items one by one and, on a failed condition, restores its copies, with no
lock, so one request's rollback can undo another request's committed
write (seen as an account item behind its own history rows). Serving one
request at a time keeps DynamoDB's promise that a transaction is atomic.
Werkzeug's single-threaded server also speaks HTTP/1.0 (one request per
connection), so an idle client connection never holds the others up.

    python scripts/moto_server.py -H 127.0.0.1 -p 8000
"""

import argparse
import os

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    # As moto's own server does, but with threaded=False.
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=False, processes=1, use_reloader=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
