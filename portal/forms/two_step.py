"""Forms of customer two-step sign-in: recovery codes and the company's rule."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import DataRequired, Length


class RecoveryCodeForm(FlaskForm):
    """One of the login's recovery codes, instead of the second step."""

    recovery_code = StringField(
        "Recovery code",
        validators=[
            DataRequired("Type one of your recovery codes."),
            Length(max=40, message="A recovery code is ten letters and digits."),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"},
    )


class CompanyRuleForm(FlaskForm):
    """A company admin's choice: every login of the company signs in with two steps."""

    required = BooleanField("Require two-step sign-in for every login of my company")


class CurrentPasswordForm(FlaskForm):
    """The login's password, typed again before a second step is removed."""

    password = PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password."), Length(max=200)],
        render_kw={"autocomplete": "current-password"},
    )
