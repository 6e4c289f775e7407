"""The product's WSGI app (app.py) plus a hello-world route, for benchmarks only: the baseline served by the same server."""

from app import app


@app.get("/bench/hello")
def hello():
    return "Hello, world!"
