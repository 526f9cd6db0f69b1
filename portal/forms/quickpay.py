"""Quick-pay forms: the lookup, the payment, and the pay-link request."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, RadioField, StringField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from ..money import AmountError, parse_amount
from ..validators import no_control_characters
from .billing import payment_terms_accepted


class LookupForm(FlaskForm):
    number = StringField(
        "Invoice number",
        validators=[DataRequired("Enter the invoice number."), Length(max=50)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autofocus": True},
    )
    secret = StringField(
        "Quick-pay code",
        validators=[DataRequired("Enter the quick-pay code from your invoice."), Length(max=60)],
        render_kw={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"},
    )


class PayLinkForm(FlaskForm):
    number = StringField(
        "Invoice number",
        validators=[DataRequired("Enter the invoice number."), Length(max=50)],
        render_kw={"autocomplete": "off", "autofocus": True},
    )


class AmountField(StringField):
    """A money amount typed by a person, parsed to integer cents (`.cents`). `currency` is
    the invoice's: its own symbol is accepted, another currency's is refused (A10)."""

    cents = None
    currency = None

    def pre_validate(self, form):
        try:
            self.cents = parse_amount(self.data or "", self.currency)
        except AmountError as exc:
            self.cents = None
            raise ValidationError(str(exc)) from exc
        if self.cents <= 0:
            raise ValidationError("Enter an amount greater than zero.")


class PayForm(FlaskForm):
    amount = AmountField("Amount to pay", render_kw={"inputmode": "decimal", "autocomplete": "off"})
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
    page_key = HiddenField()  # see forms.billing.CheckoutForm.page_key
