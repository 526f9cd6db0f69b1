"""Back-office money forms: confirming what arrived, refunding credit, applying credit."""

from flask_wtf import FlaskForm
from wtforms import DateField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from .. import money


class AmountField(StringField):
    """A money amount typed by staff, parsed to cents (`.cents`) by the one money parser."""

    cents = None

    def pre_validate(self, form):
        self.cents = None
        if not (self.data or "").strip():
            return
        try:
            self.cents = money.parse_amount(self.data)
        except money.AmountError as exc:
            raise ValidationError(str(exc)) from exc
        if self.cents <= 0:
            raise ValidationError("Enter an amount greater than zero.")


class ConfirmOfflineForm(FlaskForm):
    """What actually arrived for an offline payment, and when."""

    amount = AmountField(
        "Amount received",
        validators=[DataRequired("Enter the amount that arrived.")],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    received_on = DateField(
        "Received on", validators=[DataRequired("Enter the date the money arrived.")]
    )


class RefundForm(FlaskForm):
    """Money given back out of a payment's credit."""

    amount = AmountField(
        "Amount refunded",
        validators=[DataRequired("Enter the amount refunded.")],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    reference = StringField("Bank or provider reference", validators=[Optional(), Length(max=100)])
    note = StringField(
        "Note", validators=[DataRequired("Say why, for the audit log."), Length(max=255)]
    )


class ApplyCreditForm(FlaskForm):
    """Apply part of a customer's credit to its open invoices, oldest due first."""

    amount = AmountField(
        "Credit to apply",
        validators=[DataRequired("Enter the amount of credit to apply.")],
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
