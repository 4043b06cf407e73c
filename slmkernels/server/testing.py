"""Run the server in this process on a free loopback port (tests and benchmarks)."""

from __future__ import annotations

import contextlib
import threading
import time

from .app import App


@contextlib.contextmanager
def serve_in_thread(model, name: str = "model", *, max_batch: int = 8, api_key: str | None = None,
                    timeout: float = 30.0):
    """Yields (App, base URL "http://127.0.0.1:PORT/v1"); stops the server and its engine on exit."""
    import uvicorn

    app = App(model, name, max_batch=max_batch, api_key=api_key)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, name="slmkernels-http", daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - t0 > timeout:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield app, f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout)
        app.engine.close()
