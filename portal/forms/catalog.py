"""Catalog and cart forms: a quantity to add, and the checkout's ship-to, PO, date and notes."""

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional

from .staff import parse_quantity


class AddForm(FlaskForm):
    """How much of a product to put in the cart."""

    product = HiddenField()
    quantity = StringField("Quantity", default="1", validators=[InputRequired("Enter a quantity.")])

    def validate_quantity(self, field):
        field.milli = parse_quantity(field.data)


class CheckoutForm(FlaskForm):
    """Where and when the order goes, with the customer's PO number and notes."""

    site_id = SelectField("Ship to", choices=[], default="", validate_choice=False)
    customer_po = StringField(
        "Your PO number",
        validators=[Length(max=50, message="Keep the PO number to 50 characters.")],
    )
    requested_date = DateField("Requested delivery date", validators=[Optional()])
    notes = TextAreaField(
        "Notes",
        validators=[Length(max=2000)],
        description="Delivery instructions, dock hours, anything we should know.",
    )

    def __init__(self, *args, sites=(), **kwargs):
        super().__init__(*args, **kwargs)
        # The service checks the posted site against the login's scope (a tampered value is
        # refused there, with this field's error), so validate_choice is off here.
        self.site_id.choices = [SelectChoice("", "Choose a site…")] + [
            SelectChoice(str(s.id), f"{s.name} ({s.site_code})") for s in sites
        ]
