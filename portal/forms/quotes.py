"""RFQ and quote forms: a customer's request with item rows, a decline reason, staff pricing."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from .. import clock
from .cases import files_field
from .staff import CustomerSiteFields, money_to_cents, parse_quantity

RFQ_ROWS = 5
QUOTE_BLANK_ROWS = 2
MAX_ROWS = 40


class RfqLineForm(Form):
    """One requested item: a catalog product or a free-text description, and a quantity."""

    product = SelectField("Product", choices=[], default="")
    description = StringField("Description", validators=[Length(max=500)])
    quantity = StringField("Quantity")

    @property
    def is_blank(self) -> bool:
        return not (
            self.product.data
            or (self.description.data or "").strip()
            or (self.quantity.data or "").strip()
        )

    def validate_description(self, field):
        if not self.is_blank and not self.product.data and not (field.data or "").strip():
            raise ValidationError("Choose a product or describe the item.")

    def validate_quantity(self, field):
        field.milli = None
        if self.is_blank:
            return
        if not (field.data or "").strip():
            raise ValidationError("Enter a quantity.")
        field.milli = parse_quantity(field.data)


class RfqForm(FlaskForm):
    """A request for quote: when, where, notes and up to a few rows of items."""

    site_id = SelectField("Deliver to", choices=[], default="")
    needed_by = DateField("Needed by", validators=[Optional()])
    notes = TextAreaField(
        "Notes",
        validators=[Length(max=5000)],
        description="Delivery details, tolerances, anything we should know.",
    )
    # Drawings, specifications, photos: checked like a case's files (services/attachments).
    files = files_field("request")
    # No min_entries: WTForms 3.3 renumbers posted rows, then fills min_entries from the
    # formdata again, which duplicated a posted row; __init__ pads with empty rows instead.
    lines = FieldList(FormField(RfqLineForm), min_entries=0, max_entries=MAX_ROWS)

    def __init__(self, *args, products=(), sites=(), site_required=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.product_choices = [SelectChoice("", "Choose from the catalog…")] + [
            SelectChoice(str(p.id), f"{p.item_code} · {p.description}") for p in products
        ]
        for entry in self.lines:
            entry.form.product.choices = self.product_choices
        self.add_rows(RFQ_ROWS - len(self.lines))
        anywhere = [] if site_required else [SelectChoice("", "Any / not site-specific")]
        self.site_id.choices = anywhere + [SelectChoice(str(s.id), s.name) for s in sites]
        self.lines_error = None

    def add_rows(self, count: int = 3) -> None:
        """More empty item rows (the no-JavaScript way to ask for more than five items)."""
        for _ in range(max(0, min(count, MAX_ROWS - len(self.lines)))):
            entry = self.lines.append_entry()
            entry.form.product.choices = self.product_choices

    def validate_needed_by(self, field):
        if field.data and field.data < clock.business_today():
            raise ValidationError("Choose a date from today on.")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if ok and not any(not entry.form.is_blank for entry in self.lines):
            self.lines_error = "Add at least one item: a product or a description, and a quantity."
            return False
        return ok

    def filled_lines(self) -> list[tuple[str, str, int]]:
        """(product id or '', description, quantity in thousandths) of the rows filled in."""
        return [
            (
                entry.form.product.data or "",
                (entry.form.description.data or "").strip(),
                entry.form.quantity.milli,
            )
            for entry in self.lines
            if not entry.form.is_blank
        ]


class AcceptForm(FlaskForm):
    """Accepting a quote is a signature: full name, the terms ticked, the PO number if they
    have one, and (hidden) the digest of the quote as the page showed it."""

    full_name = StringField(
        "Your full name",
        validators=[
            InputRequired("Type your full name to sign."),
            Length(min=2, max=200, message="Type your full name to sign."),
        ],
        description="Typing your name signs the acceptance.",
    )
    terms = BooleanField(
        "I accept this quote, its prices and its terms on behalf of my company.",
        validators=[InputRequired("Tick that you accept the quote's terms.")],
    )
    customer_po = StringField(
        "Your PO number (optional)",
        validators=[Length(max=50, message="Keep the PO number to 50 characters.")],
        description="We put it on the order.",
    )
    digest = HiddenField()

    def validate_customer_po(self, field):
        field.data = " ".join((field.data or "").split())


class DeclineForm(FlaskForm):
    """Why the customer declines a quote."""

    reason = TextAreaField(
        "Why are you declining?",
        validators=[InputRequired("Tell us briefly why."), Length(max=1000)],
        description="Price, lead time, no longer needed… it helps us quote better next time.",
    )

    def validate_reason(self, field):
        if not (field.data or "").strip():
            raise ValidationError("Tell us briefly why.")


class QuoteLineForm(Form):
    """One priced line of a quote (blank rows are ignored)."""

    item_code = StringField("Item", validators=[Length(max=50)])
    description = StringField("Description", validators=[Length(max=500)])
    quantity = StringField("Quantity")
    unit_price = StringField("Unit price")

    @property
    def is_blank(self) -> bool:
        return not any(
            (f.data or "").strip()
            for f in (self.item_code, self.description, self.quantity, self.unit_price)
        )

    def validate_description(self, field):
        if not self.is_blank and not (field.data or "").strip() and not self.item_code.data:
            raise ValidationError("Describe the line.")

    def validate_quantity(self, field):
        field.milli = None
        if not self.is_blank:
            if not (field.data or "").strip():
                raise ValidationError("Enter a quantity.")
            field.milli = parse_quantity(field.data)

    def validate_unit_price(self, field):
        # Blank on a catalog line (an item code) means "the customer's price for it", which
        # the view looks up; a free-text line has no price to fall back on.
        field.cents = None
        if not self.is_blank:
            if not (field.data or "").strip():
                if (self.item_code.data or "").strip():
                    return
                raise ValidationError("Enter a unit price.")
            field.cents = money_to_cents(field.data, "price")


class QuoteForm(FlaskForm):
    """A quote's validity, notes for the customer, and priced lines."""

    valid_until = DateField("Valid until", validators=[InputRequired("Enter the last valid day.")])
    notes = TextAreaField(
        "Notes for the customer",
        validators=[Length(max=5000)],
        description="Lead time, delivery terms, what the price includes.",
    )
    # Drawings, data sheets, terms: the customer sees them with the published quote.
    files = files_field("quote")
    lines = FieldList(FormField(QuoteLineForm), min_entries=0, max_entries=MAX_ROWS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines_error = None

    def validate_valid_until(self, field):
        if field.data and field.data < clock.business_today():
            raise ValidationError("Choose a date from today on.")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        if ok and not any(not entry.form.is_blank for entry in self.lines):
            self.lines_error = "Add at least one line."
            return False
        return ok

    def pad(self, blank: int = QUOTE_BLANK_ROWS) -> None:
        """Empty rows to type more lines into (works without JavaScript)."""
        have = sum(1 for entry in self.lines if entry.form.is_blank)
        for _ in range(max(0, min(blank - have, MAX_ROWS - len(self.lines)))):
            self.lines.append_entry()

    def filled_lines(self) -> list[tuple[str, str, int, int]]:
        """(item code, description, quantity thousandths, unit price cents) of filled rows;
        the price is None where a catalog line was left to the customer's price."""
        return [
            (
                (entry.form.item_code.data or "").strip(),
                (entry.form.description.data or "").strip(),
                entry.form.quantity.milli,
                entry.form.unit_price.cents,
            )
            for entry in self.lines
            if not entry.form.is_blank
        ]


class DirectQuoteForm(CustomerSiteFields, QuoteForm):
    """A quote the office starts itself: for which customer (and site), then as QuoteForm."""
