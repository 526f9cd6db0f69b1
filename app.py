"""WSGI entry point in a checkout: `flask --app app ...` and `gunicorn app:app`.

An installed portal needs no file of its own: `flask --app portal ...` and
`gunicorn 'portal:create_app()'` work from any directory.
"""

from portal import create_app

app = create_app()
