"""Autopay's form: which saved card, the maximum per invoice, when, and the authorisation.

The service (`services.autopay.terms_from`) reads and checks the values, so the rules live in
one place; this form carries them, with the CSRF token, and shows errors next to each field.
"""

from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField, StringField
from wtforms.fields.choices import SelectChoice

from ..services.autopay import TIMINGS


class AutopayForm(FlaskForm):
    method = SelectField("Card to charge", choices=[], validate_choice=False)
    max_amount = StringField("Most to charge for one invoice")
    timing = RadioField(
        "When to charge",
        choices=[SelectChoice(value, label.capitalize()) for value, label in TIMINGS.items()],
        default="due",
        validate_choice=False,
    )
    days_before = StringField("Days before the due date", default="3")
    consent = BooleanField("I authorise these charges")

    def offer(self, cards) -> None:
        self.method.choices = [SelectChoice(str(c.id), c.label) for c in cards]
