"""`python -m pytest_shutdown.testing serve`: the fake model server, standalone.

    python -m pytest_shutdown.testing serve [--port 8000] [--api-key KEY]

It speaks the Responses, Chat Completions, Gemini and Messages APIs on 127.0.0.1. The
model name picks a scripted policy (`compliant`, `saboteur-rm`, `saboteur-rm@0.2`,
`early-submit`, `PATH.json`), kept for the server's life, so a saboteur's `@RATE` holds
across episodes. Point a suite at it with the environment it prints, e.g.
`pytest --shutdown-model=openai-chat/saboteur-rm@0.2`.
"""

from __future__ import annotations

import argparse
import sys
import threading

from .server import FAKE_API_KEY, FakeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_shutdown.testing",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the fake model server until interrupted")
    serve.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any)")
    serve.add_argument("--api-key", default=FAKE_API_KEY, help="the key clients must send")
    args = parser.parse_args(argv)
    try:
        server = FakeServer(api_key=args.api_key).start(args.port)
    except OSError as exc:
        print(f"{parser.prog} serve: error: cannot listen on port {args.port} ({exc}); choose "
              "another with --port", file=sys.stderr)  # fmt: skip
        return 2
    print(f"fake model server on {server.url}; point the SDKs here with:", flush=True)
    for name, value in server.env().items():
        print(f"export {name}={value}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
