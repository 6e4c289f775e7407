"""The product app plus a hello-world route, served side by side for the calendar benchmark only."""

from scheduler import create_app

app = create_app()


@app.get("/bench/hello")
def hello():
    return "Hello, world"
