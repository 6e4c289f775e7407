"""The product app plus a hello-world route, for benchmarks only: the baseline served by the same server."""

from scheduler import create_app

app = create_app()


@app.get("/bench/hello")
def hello():
    return "Hello, world!"
