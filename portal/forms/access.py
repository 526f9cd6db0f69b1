"""Access forms: registration, request access, passwords, my account and company logins."""

import unicodedata

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional, ValidationError

from .. import clock
from ..models import PORTAL_ROLES
from ..services.access import ROLE_LABELS, password_problem

PASSWORD_MIN = 10
PASSWORD_MAX = 128


def plain_text(form, field):
    """No line breaks or control characters: these values end up in emails (B9)."""
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in field.data or ""):
        raise ValidationError("Use letters, numbers and punctuation only.")


def good_password(form, field):
    """The password policy (C3): length, not a well-known password; no composition rules."""
    problem = password_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


def email_field(label="Email", **kw):
    return EmailField(
        label,
        validators=[
            DataRequired("Enter an email address."),
            Email("Enter a valid email address."),
            Length(max=320),
            plain_text,
        ],
        render_kw={"autocomplete": "email", "spellcheck": "false"},
        **kw,
    )


def new_password_field(label="New password", **kw):
    return PasswordField(
        label,
        **kw,
        validators=[DataRequired("Choose a password."), good_password],
        render_kw={"autocomplete": "new-password", "maxlength": PASSWORD_MAX},
    )


class CheckboxesField(SelectMultipleField):
    """Several checkboxes with one label (a fieldset in the template)."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()

    def pre_validate(self, form):
        # Choices unknown to the form are refused, never silently kept (E4).
        values = {str(c.value) for c in self.choices}
        for value in self.data or []:
            if str(value) not in values:
                raise ValidationError("Choose from the list.")


class RegisterForm(FlaskForm):
    invoice_number = StringField(
        "Invoice number",
        id="reg-invoice",
        validators=[DataRequired("Enter the number of one of your invoices."), Length(max=50)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autofocus": True},
    )
    code = StringField(
        "Quick-pay code",
        id="reg-code",
        validators=[
            DataRequired("Enter the quick-pay code printed on that invoice."),
            Length(max=60),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )
    name = StringField(
        "Your name",
        id="reg-name",
        validators=[DataRequired("Enter your name."), Length(max=200), plain_text],
        render_kw={"autocomplete": "name"},
    )
    email = email_field("Your work email", id="reg-email")
    phone = StringField(
        "Phone (optional)",
        id="reg-phone",
        validators=[Optional(), Length(max=50), plain_text],
        render_kw={"autocomplete": "tel"},
    )


class RequestAccessForm(FlaskForm):
    name = StringField(
        "Your name",
        id="req-name",
        validators=[DataRequired("Enter your name."), Length(max=200), plain_text],
        render_kw={"autocomplete": "name", "autofocus": True},
    )
    company = StringField(
        "Company",
        id="req-company",
        validators=[DataRequired("Enter your company's name."), Length(max=200), plain_text],
        render_kw={"autocomplete": "organization"},
    )
    email = email_field("Work email", id="req-email")
    phone = StringField(
        "Phone (optional)",
        id="req-phone",
        validators=[Optional(), Length(max=50), plain_text],
        render_kw={"autocomplete": "tel"},
    )
    account_number = StringField(
        "Account number (optional)",
        id="req-account",
        validators=[Optional(), Length(max=50), plain_text],
        render_kw={"autocomplete": "off"},
    )
    message = TextAreaField(
        "Message (optional)",
        id="req-message",
        validators=[
            Optional(),
            Length(max=2000, message="Keep the message under 2,000 characters."),
        ],
    )


class ForgotPasswordForm(FlaskForm):
    email = email_field(id="forgot-email")


class SetPasswordForm(FlaskForm):
    password = new_password_field("Choose a password", id="new-password")
    confirm = PasswordField(
        "Type it again",
        id="new-confirm",
        validators=[
            DataRequired("Type the password again."),
            EqualTo("password", "The two passwords are not the same."),
        ],
        render_kw={"autocomplete": "new-password"},
    )
    accept_terms = BooleanField("I have read and accept the terms of use", id="new-terms")


class ProfileForm(FlaskForm):
    first_name = StringField(
        "First name",
        id="profile-first",
        validators=[DataRequired("Enter your first name."), Length(max=100), plain_text],
        render_kw={"autocomplete": "given-name"},
    )
    last_name = StringField(
        "Last name",
        id="profile-last",
        validators=[Optional(), Length(max=100), plain_text],
        render_kw={"autocomplete": "family-name"},
    )
    phone = StringField(
        "Phone",
        id="profile-phone",
        validators=[Optional(), Length(max=50), plain_text],
        render_kw={"autocomplete": "tel"},
    )
    time_zone = SelectField("Time zone", id="profile-time-zone", validate_choice=False)

    def __init__(self, *args, business_zone: str = "UTC", **kwargs):
        super().__init__(*args, **kwargs)
        label = f"The business's time zone ({business_zone.replace('_', ' ')})"
        self.time_zone.choices = [SelectChoice("", label)] + [
            SelectChoice(name, name.replace("_", " "))
            for name in clock.zone_names(self.time_zone.data)
        ]

    def validate_time_zone(self, field):
        # Any IANA name is accepted; the list shows the common ones.
        field.data = (field.data or "").strip()
        if field.data and not clock.is_zone(field.data):
            raise ValidationError("Choose a time zone from the list.")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        id="current-password",
        validators=[DataRequired("Enter your current password."), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "current-password"},
    )
    password = new_password_field(id="change-password")
    confirm = PasswordField(
        "Type the new password again",
        id="change-confirm",
        validators=[
            DataRequired("Type the new password again."),
            EqualTo("password", "The two passwords are not the same."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


ROLE_CHOICES = [SelectChoice(r, ROLE_LABELS[r]) for r in PORTAL_ROLES]


class AccessFieldsMixin:
    """Roles and site scope, offered within what the acting admin holds."""

    def limit_to(self, roles, sites, admin_sites):
        self.roles.choices = [SelectChoice(r, ROLE_LABELS[r]) for r in PORTAL_ROLES if r in roles]
        self.sites.choices = [SelectChoice(str(s.id), s.name) for s in sites]
        if admin_sites is not None:
            self.all_sites.data = False


class InviteForm(FlaskForm, AccessFieldsMixin):
    first_name = StringField(
        "First name",
        id="invite-first",
        validators=[DataRequired("Enter their first name."), Length(max=100), plain_text],
    )
    last_name = StringField(
        "Last name", id="invite-last", validators=[Optional(), Length(max=100), plain_text]
    )
    email = email_field("Their email", id="invite-email")
    roles = CheckboxesField("What they may do", choices=ROLE_CHOICES)
    all_sites = BooleanField("All sites of the company", default=True)
    sites = CheckboxesField("Or only these sites", choices=[])


class UserAccessForm(FlaskForm, AccessFieldsMixin):
    roles = CheckboxesField("What they may do", choices=ROLE_CHOICES)
    all_sites = BooleanField("All sites of the company")
    sites = CheckboxesField("Or only these sites", choices=[])
