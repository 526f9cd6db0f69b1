"""Flask-WTF forms, one module per capability."""

from flask_wtf import FlaskForm


class ActionForm(FlaskForm):
    """An empty form for button-only POSTs: it carries the CSRF token and nothing else."""
