"""Sign-in forms for customers and staff."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length, Regexp


class SignInForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[
            DataRequired("Enter your email address."),
            Email("Enter a valid email."),
            Length(max=320),
        ],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=200)],
        render_kw={"autocomplete": "current-password"},
    )


class CustomerSignInForm(SignInForm):
    """The customer sign-in: the terms box is read only when staff require acceptance."""

    accept_terms = BooleanField("I have read and accept the terms of use")


class ConfirmPasswordForm(FlaskForm):
    """Type the password again before a sensitive change (checklist C6)."""

    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password."), Length(max=200)],
        render_kw={"autocomplete": "current-password", "autofocus": True},
    )


class TwoStepCodeForm(FlaskForm):
    """The six-digit code of the staff login's authenticator app (checklist C5)."""

    code = StringField(
        "Code from your authenticator app",
        validators=[
            DataRequired("Type the six-digit code your app shows now."),
            Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="The code is six digits."),
        ],
        render_kw={
            "autocomplete": "one-time-code",
            "inputmode": "numeric",
            "autofocus": True,
            "maxlength": 7,
        },
    )
