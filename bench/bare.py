"""The bare twin: a minimal Flask app answering each benchmarked path with an HTML page of
exactly the size the portal returned for it (sizes from the JSON file in BENCH_SIZES)."""

import json
import os

from flask import Flask, request

app = Flask(__name__)
SIZES = json.loads(open(os.environ["BENCH_SIZES"]).read()) if "BENCH_SIZES" in os.environ else {}
HEAD = "<!doctype html><html><head><title>bare</title></head><body><p>"
TAIL = "</p></body></html>"


def _page(size: int) -> str:
    return HEAD + "x" * max(0, size - len(HEAD) - len(TAIL)) + TAIL


PAGES = {path: _page(size) for path, size in SIZES.items()}


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def page(path):
    """The same-size page for this path and query string."""
    key = request.path + (("?" + request.query_string.decode()) if request.query_string else "")
    return PAGES.get(key, _page(1000))
