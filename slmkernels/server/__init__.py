"""``slmkernels serve``: an OpenAI-compatible HTTP server (needs the [server] extra: starlette,
uvicorn). Concurrent requests share the model through continuous batching (engine.py)."""

from __future__ import annotations

import argparse
import os
import sys

from ..cli_args import add_model_args, fail, integer, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve the model over an OpenAI-compatible HTTP API",
                       description="POST /v1/chat/completions, /v1/completions; GET /v1/models. "
                                   "Listens on 127.0.0.1 unless --host says otherwise.")
    add_model_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=integer(0, 65535), default=8000, help="TCP port (default 8000; 0 = any free)")
    p.add_argument("--parallel", type=integer(1, 256), default=8,
                   help="sequences decoded together (default 8); the KV cache holds --context tokens for each")
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' (default: $SLMK_API_KEY if set, else no key)")
    p.add_argument("--name", default=None, help="the model id /v1/models reports (default: the file name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    prog = "slmkernels serve"
    try:
        import uvicorn

        from .app import App
    except ImportError as e:
        fail(prog, f"the server needs its extra: pip install 'slmkernels[server]' ({e})")
    model = load_model(args, prog, max_sequences=args.parallel)
    name = args.name or os.path.splitext(os.path.basename(args.model))[0]
    app = App(model, name, max_batch=args.parallel, api_key=args.api_key or os.environ.get("SLMK_API_KEY") or None)
    print(f"{prog}: {name} on http://{args.host}:{args.port}/v1 ({args.parallel} parallel sequences, "
          f"{model.context} tokens each)", file=sys.stderr)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except OSError as e:
        fail(prog, f"argument --port: cannot listen on {args.host}:{args.port}: {e}")
    finally:
        app.engine.close()
    return 0
