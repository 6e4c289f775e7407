"""The rules of Townhall, free of Flask: each function takes a session and `now`, and flushes."""
