"""The back office's "View as customer" form (issue 19)."""

from flask_wtf import FlaskForm
from wtforms import SelectField
from wtforms.fields.choices import SelectChoice

from ..services.view_as import WHOLE_ACCOUNT


class ViewAsForm(FlaskForm):
    """Which of the customer's logins to see the portal as (0: the whole account)."""

    login = SelectField("See the portal as", coerce=int, validate_choice=True)

    def offer(self, logins) -> "ViewAsForm":
        """The choices: the whole account, then each active login by name and email."""
        self.login.choices = [SelectChoice(0, f"{WHOLE_ACCOUNT} (every role, every site)")] + [
            SelectChoice(user.id, f"{user.display_name} · {user.email}") for user in logins
        ]
        return self
