"""gunicorn settings the portal ships: an access log that never writes an emailed link.

Use it with `gunicorn -c python:portal.gunicorn_conf 'portal:create_app()' ...` (the
Procfile does). A password-reset, invitation, registration or pay link carries its
credential in the path (`/reset/<token>`); a plain access log would keep every one of them
in clear for as long as the logs live, readable by anyone who reads logs (checklist K3).
`RedactingLogger` replaces the token in every value the access log can print: the request
line, the path, the Referer (the page after a pay link sends it), and any header or environ
value a custom `access_log_format` names. A reverse proxy in front needs the same (README,
"Deploying"; SECURITY.md has an nginx example).

Only the access log is configured here; bind address, workers and the rest stay on the
command line or in `GUNICORN_CMD_ARGS`, which override this file.
"""

import re

from gunicorn.glogging import Logger

# The paths whose last segment is a one-time (or reusable) credential sent by email.
TOKEN_PATH = re.compile(r"(/(?:reset|invitation|register/confirm|pay/link)/)[^/?#\s\"]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` with the token of every emailed-link path replaced by `[redacted]`."""
    return TOKEN_PATH.sub(r"\1" + REDACTED, text)


class RedactingLogger(Logger):
    """gunicorn's logger whose access-log atoms carry no emailed-link token."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()
        }


logger_class = RedactingLogger
# Access lines go to stdout unless the command line names another file.
accesslog = "-"
