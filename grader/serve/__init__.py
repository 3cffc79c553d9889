"""The course server: students hand in and read feedback in seconds; instructors review,
adjust and release in the browser (``python -m grader serve``).

``run`` is the one entry point: it prepares every assignment as the batch tool does
(validate, the reference canary), opens the database (SQLite in the data folder, or
PostgreSQL), makes the first instructor's one-time sign-in link on an empty database, starts
the grading workers and serves the application (``grader.serve.app``) with uvicorn.
"""

from __future__ import annotations

from grader.serve.app import Config, Server, create_app

__all__ = ["Config", "Server", "create_app", "run"]


def run(config: Config, *, host: str = "127.0.0.1", port: int = 8000,
        announce: bool = True) -> None:
    import uvicorn

    server = Server(config)
    for line in server.prepare():
        print(line, flush=True)
    link = server.bootstrap()
    base = f"{'https' if config.https else 'http'}://{host}:{port}"
    if announce:
        print(f"Course server for {', '.join(config.assignments)} on {base}/ "
              f"({server.store.db.location.shown()}, {config.jobs} grading worker(s))",
              flush=True)
        print(f"Instructors: {base}/i/login", flush=True)
        if link:
            print(f"First sign-in (once, within the hour; then set a password): {base}{link}",
                  flush=True)
        print(f"Students: the links in {base}/i/tokens.csv (Course page)", flush=True)
    uvicorn.run(create_app(server), host=host, port=port, access_log=False,
                log_level="warning", proxy_headers=False, timeout_graceful_shutdown=5)
