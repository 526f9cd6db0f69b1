"""Sign-in forms for customers and staff."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Email, Length


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
