"""What the benches serve: Townhall's app (app.py) and, at /bench/hello, a minimal Flask app that
answers a fixed string. The hello is the baseline every ratio is taken against: served by the same
gunicorn workers in the same run, but none of Townhall's hooks, extensions or session run for it."""

from flask import Flask

from app import app as townhall

hello_app = Flask("hello")


@hello_app.get("/bench/hello")
def hello():
    return "Hello, world!"


def app(environ, start_response):
    """The WSGI entry point for gunicorn: the hello path to the minimal app, everything else to Townhall."""
    if environ.get("PATH_INFO") == "/bench/hello":
        return hello_app(environ, start_response)
    return townhall(environ, start_response)
