"""Billing forms: paying from the invoice list, confirming a payment, questioning an invoice.

The list's ticked invoices and per-invoice amounts are dynamic inputs (`invoice`,
`amount-<id>`) read beside these forms; the service re-validates every value.
"""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    RadioField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from ..services import settings
from ..validators import no_control_characters


def fill_payer(form, attempt) -> None:
    """ "Try again": a pay form (checkout or quick pay) filled with the payer name, email and
    method an earlier attempt recorded; the method only while it is still offered."""
    form.payer_name.data, form.payer_email.data = attempt.payer_name, attempt.payer_email
    if any(choice.value == attempt.provider for choice in form.provider.choices):
        form.provider.data = attempt.provider


def payment_terms_accepted(form, field):
    """Every payer, guest or signed in, ticks the box while staff require the payment terms."""
    if not field.data and settings.payment_terms_acceptance_required():
        raise ValidationError("Accept the payment terms to continue.")


class SelectionForm(FlaskForm):
    """The pay form around the invoice table: which invoices, how much, or one amount."""

    pay_amount = StringField(
        "Pay what you can",
        validators=[Optional(), Length(max=30)],
        render_kw={"inputmode": "decimal", "autocomplete": "off", "placeholder": "0.00"},
    )


class CheckoutForm(FlaskForm):
    """Who pays and how, on the review page; the lines come back as hidden `line` inputs."""

    payer_name = StringField(
        "Your name",
        validators=[
            DataRequired("Enter your name for the receipt."),
            Length(max=255),
            no_control_characters,
        ],
        render_kw={"autocomplete": "name"},
    )
    payer_email = EmailField(
        "Email for the receipt",
        validators=[
            DataRequired("Enter an email address for the receipt."),
            Email("Enter a valid email address."),
            Length(max=320),
        ],
        render_kw={"autocomplete": "email"},
    )
    provider = RadioField("Payment method", validators=[DataRequired("Choose how to pay.")])
    accept_terms = BooleanField("I accept the payment terms", validators=[payment_terms_accepted])
    # The payer key of the page this form was rendered on (`payments.page_key`): two clicks
    # of one form are one payment, even a browser's first (I2).
    page_key = HiddenField()


class QuestionForm(FlaskForm):
    """ "Question this invoice": opens a support case linked to it."""

    subject = StringField(
        "Subject",
        validators=[
            DataRequired("Say in a few words what the question is."),
            Length(max=200),
            no_control_characters,
        ],
    )
    message = TextAreaField(
        "Your question",
        validators=[DataRequired("Tell us what looks wrong."), Length(max=5000)],
    )
