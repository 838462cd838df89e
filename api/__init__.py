"""linkflow's HTTP side: today the codec server for Temporal Web and the CLI, later the HTTP API.

`create_app()` (api/app.py) builds the one FastAPI application; `python -m api` serves it.
"""
