"""The project's mock LLM provider on uvloop, without its per-request log line.

`extproc mock-llm` runs on the default asyncio loop and logs every request; the bench only
needs it to be as cheap as possible, since all setups share it and it is plain Python.

    python bench/mock_uvloop.py --port 8081
"""

from __future__ import annotations

import argparse
import logging

import uvloop

from extproc.mock.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.disable(logging.INFO)
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
