"""Back-office forms: settings, email templates, customers, invoices, payments, staff."""

from datetime import date
from decimal import Decimal, InvalidOperation

from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from .. import clock, money
from ..models import PORTAL_ROLES
from ..money import AmountError, QuantityError, parse_amount, to_decimal
from ..services import reminder_schedule as schedules
from ..services.backoffice import find_customer

ROLE_LABELS = {
    "invoices": "Invoices: view and pay",
    "statements": "Statements: balance, aging, payment history",
    "quotes": "Quotes: requests for quote and quotes",
    "orders": "Orders: orders and shipments",
    "cases": "Support: open and follow cases",
    "company_admin": "Company admin: manage the company's logins",
}
# The site select's first option (coerce=int: 0 is "no site").
NO_SITE = SelectChoice(0, "No particular site")
ROLE_CHOICES = [SelectChoice(role, ROLE_LABELS[role]) for role in PORTAL_ROLES]
CODE = Regexp(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", message="Use letters, digits, dots, dashes.")


class MultiCheckboxField(SelectMultipleField):
    """A set of checkboxes that posts a list (roles, sites)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def money_to_cents(text: str, field_label: str = "amount", allow_zero: bool = True) -> int:
    """Parse a typed amount for a form; raises ValidationError with a message for people."""
    try:
        cents = parse_amount(text)
    except AmountError as exc:
        raise ValidationError(str(exc)) from exc
    if cents == 0 and not allow_zero:
        raise ValidationError(f"The {field_label} must be more than zero.")
    return cents


# --- settings ---------------------------------------------------------------------------

MARKDOWN_FIELDS = ("bulletin_message", "login_message", "login_terms", "payment_instructions")
SWITCHES = (
    "require_terms_acceptance",
    "require_payment_terms_acceptance",
    "quick_pay_enabled",
    "quick_pay_account_number",
    "partial_payments",
    "self_registration",
    "request_access",
    "quick_requests",
    "module_invoices",
    "module_statements",
    "module_quotes",
    "module_orders",
    "module_cases",
)
TEXTS = (
    "portal_name",
    "company_name",
    "contact_email",
    "contact_phone",
    "bulletin_message",
    "login_message",
    "login_terms",
    "payment_instructions",
    "payment_terms",
)


class SettingsForm(FlaskForm):
    """The whole settings page; `to_settings` turns it into typed setting values."""

    portal_name = StringField(
        "Portal name", validators=[DataRequired("Give the portal a name."), Length(max=60)]
    )
    company_name = StringField(
        "Company name", validators=[DataRequired("Enter your company's name."), Length(max=100)]
    )
    contact_email = EmailField(
        "Contact email",
        validators=[Optional(), Email("Enter a valid email address."), Length(max=320)],
    )
    contact_phone = StringField("Contact phone", validators=[Optional(), Length(max=50)])
    time_zone = SelectField("Time zone", validate_choice=False)
    bulletin_message = TextAreaField("Bulletin message", validators=[Length(max=5000)])
    login_message = TextAreaField("Login message", validators=[Length(max=5000)])
    login_terms = TextAreaField("Login terms", validators=[Length(max=20000)])
    require_terms_acceptance = BooleanField("Customers must accept the terms to sign in")
    payment_instructions = TextAreaField("Payment instructions", validators=[Length(max=5000)])
    payment_terms = TextAreaField("Payment terms", validators=[Length(max=2000)])
    require_payment_terms_acceptance = BooleanField(
        "Payers must tick “I accept the payment terms” before paying"
    )
    quick_pay_enabled = BooleanField("Quick pay: pay an invoice without signing in")
    quick_pay_account_number = BooleanField(
        "Also accept the account number instead of the quick-pay code"
    )
    partial_payments = BooleanField("Allow partial payments")
    minimum_partial = StringField("Smallest partial payment")
    self_registration = BooleanField("Register with an invoice (self-registration)")
    request_access = BooleanField("Request access form")
    quick_requests = BooleanField("Quick requests")
    module_invoices = BooleanField("Invoices")
    module_statements = BooleanField("Statements")
    module_quotes = BooleanField("Quotes")
    module_orders = BooleanField("Orders")
    module_cases = BooleanField("Support cases")
    default_roles = MultiCheckboxField("Roles for new portal users", choices=ROLE_CHOICES)
    case_categories = TextAreaField("Case categories", validators=[Length(max=2000)])
    attachment_max_mb = IntegerField(
        "Largest attachment (MB)",
        validators=[
            Optional(),
            NumberRange(1, 15, "Between 1 and 15 MB (an upload is at most 16 MB)."),
        ],
    )
    attachment_max_files = IntegerField(
        "Most attachments on one message",
        validators=[Optional(), NumberRange(1, 20, "Between 1 and 20 files.")],
    )
    statement_day = SelectField(
        "Statements by email",
        coerce=int,
        choices=[SelectChoice(0, "Off")]
        + [SelectChoice(d, f"Monthly, on day {d}") for d in range(1, 29)],
        default=0,
    )
    payment_reminders = BooleanField("Email payment reminders")
    reminder_schedule = StringField(
        "Reminder days (from the due date)", validators=[Length(max=200)]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_zone.choices = [
            SelectChoice(name, name.replace("_", " "))
            for name in clock.zone_names(self.time_zone.data)
        ]

    @classmethod
    def from_settings(cls, values: dict):
        """A form filled from the current settings (GET)."""
        data = {key: values[key] for key in TEXTS + SWITCHES}
        data["time_zone"] = values["time_zone"]
        data["minimum_partial"] = f"{to_decimal(values['minimum_partial_cents'])}"
        data["default_roles"] = list(values["default_roles"])
        data["case_categories"] = "\n".join(values["case_categories"])
        data["attachment_max_mb"] = values["attachment_max_mb"]
        data["attachment_max_files"] = values["attachment_max_files"]
        data["statement_day"] = values["statement_day"]
        data["payment_reminders"] = values["payment_reminders"]
        data["reminder_schedule"] = schedules.schedule_text(values["reminder_schedule"])
        return cls(data=data)

    def validate_time_zone(self, field):
        # Any IANA name is accepted (the list shows the common ones), so a typed-in or
        # scripted value is checked against the zone database, not the list.
        field.data = (field.data or "UTC").strip()
        if not clock.is_zone(field.data):
            raise ValidationError(
                "Choose a time zone from the list (an IANA name such as America/New_York)."
            )

    def validate_minimum_partial(self, field):
        field.cents = money_to_cents(field.data or "0")

    def validate_require_terms_acceptance(self, field):
        if field.data and not (self.login_terms.data or "").strip():
            raise ValidationError("Write the terms before asking customers to accept them.")

    def validate_reminder_schedule(self, field):
        if not field.raw_data:
            return  # an older page without the field keeps the schedule
        try:
            field.days = schedules.parse_schedule(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc

    def validate_default_roles(self, field):
        if not field.data:
            raise ValidationError("Choose at least one role for new portal users.")

    def to_settings(self) -> dict:
        """The typed values to store."""
        values = {key: (getattr(self, key).data or "").strip() for key in TEXTS}
        for key in MARKDOWN_FIELDS + ("payment_terms",):
            # Keep the author's line breaks (Markdown cares); just normalise them.
            values[key] = (getattr(self, key).data or "").replace("\r\n", "\n").strip()
        values.update({key: bool(getattr(self, key).data) for key in SWITCHES})
        values["minimum_partial_cents"] = self.minimum_partial.cents
        values["time_zone"] = self.time_zone.data
        values["default_roles"] = [r for r in PORTAL_ROLES if r in self.default_roles.data]
        # The case fields came later: a post without them (an older page) keeps the values.
        if self.case_categories.raw_data:
            lines = (line.strip()[:60] for line in self.case_categories.data.splitlines())
            values["case_categories"] = list(dict.fromkeys(line for line in lines if line))
        for key in ("attachment_max_mb", "attachment_max_files"):
            if getattr(self, key).data is not None:
                values[key] = getattr(self, key).data
        if self.statement_day.raw_data:  # an older page without the field keeps the day
            values["statement_day"] = self.statement_day.data
        if self.reminder_schedule.raw_data:  # likewise the reminders' switch and schedule
            values["payment_reminders"] = bool(self.payment_reminders.data)
            values["reminder_schedule"] = self.reminder_schedule.days
        return values


class EmailTemplateForm(FlaskForm):
    """One email template: a subject line and a plain-text body with placeholders."""

    subject = StringField("Subject", validators=[Length(max=300)])
    body = TextAreaField("Message", validators=[Length(max=25_000)])


# --- customers, sites, contacts ---------------------------------------------------------


class CustomerForm(FlaskForm):
    """A customer account and its account-class options."""

    account_number = StringField(
        "Account number",
        validators=[DataRequired("Enter the account number."), Length(max=50), CODE],
    )
    name = StringField(
        "Name", validators=[DataRequired("Enter the company name."), Length(max=255)]
    )
    email = EmailField(
        "Billing email",
        validators=[Optional(), Email("Enter a valid email address."), Length(max=320)],
    )
    phone = StringField("Phone", validators=[Optional(), Length(max=50)])
    address = TextAreaField("Address", validators=[Optional(), Length(max=1000)])
    portal_enabled = BooleanField("Portal enabled: this customer's logins can sign in")
    allow_self_registration = BooleanField(
        "Invoice-verified self-registration: contacts can register with an invoice"
    )
    auto_invite = BooleanField("Invite new contacts automatically when they have an email")


class SiteForm(FlaskForm):
    """A customer's site (location)."""

    site_code = StringField(
        "Site code", validators=[DataRequired("Enter a site code."), Length(max=50), CODE]
    )
    name = StringField("Name", validators=[DataRequired("Enter the site name."), Length(max=255)])
    address = TextAreaField("Address", validators=[Optional(), Length(max=1000)])


class ContactForm(FlaskForm):
    """A person at a customer."""

    first_name = StringField("First name", validators=[Optional(), Length(max=100)])
    last_name = StringField("Last name", validators=[Optional(), Length(max=100)])
    email = EmailField(
        "Email", validators=[Optional(), Email("Enter a valid email address."), Length(max=320)]
    )
    phone = StringField("Phone", validators=[Optional(), Length(max=50)])
    site_id = SelectField("Site", coerce=int, choices=[NO_SITE], default=0)

    def validate(self, extra_validators=None):
        # Not an inline validator: Optional() on the name fields would skip it when empty.
        ok = super().validate(extra_validators)
        named = any((f.data or "").strip() for f in (self.first_name, self.last_name, self.email))
        if not named:
            self.first_name.errors = list(self.first_name.errors) + ["Enter a name or an email."]
            return False
        return ok


class AccessForm(FlaskForm):
    """A contact's portal access: roles and scope."""

    roles = MultiCheckboxField("Roles", choices=ROLE_CHOICES)
    scope = RadioField(
        "Sees",
        choices=[
            SelectChoice("all", "The whole account"),
            SelectChoice("sites", "Only the sites ticked below"),
        ],
        default="all",
    )
    site_ids = MultiCheckboxField("Sites", coerce=int, choices=[])

    def validate_roles(self, field):
        if not field.data:
            raise ValidationError("Choose at least one role.")

    def validate_site_ids(self, field):
        if self.scope.data == "sites" and not field.data:
            raise ValidationError("Tick at least one site, or choose the whole account.")


class DeactivateForm(FlaskForm):
    """A button-only POST (deactivate, resend, reactivate)."""


# --- invoices ---------------------------------------------------------------------------


def parse_quantity(text: str) -> int:
    """`"2.5"` -> 2500 thousandths (`money.parse_quantity`), its problem as a field error."""
    try:
        return money.parse_quantity(text)
    except QuantityError as exc:
        raise ValidationError(str(exc)) from exc


class LineForm(Form):
    """One invoice line (blank lines are ignored)."""

    item_code = StringField("Item", validators=[Optional(), Length(max=50)])
    # No Optional(): it would stop the chain before the checks below, which handle blanks.
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
        if not self.is_blank and not (field.data or "").strip():
            raise ValidationError("Describe the line.")

    def validate_quantity(self, field):
        if not self.is_blank:
            field.milli = parse_quantity(field.data or "1")

    def validate_unit_price(self, field):
        if not self.is_blank:
            field.cents = money_to_cents(field.data or "", "price")


class CustomerField(StringField):
    """A customer named by account number, picked suggestion or name (see
    `backoffice.find_customer`); once validated, `.customer` is the one it names."""

    customer = None
    _resolved = None  # (text, customer, message): the site select asks first, then validation

    def resolve(self):
        """(customer or None, message) for the text in the box, looked up once per text."""
        if self._resolved is None or self._resolved[0] != self.data:
            self._resolved = (self.data, *find_customer(self.data))
        return self._resolved[1:]

    def pre_validate(self, form):
        self.customer, message = self.resolve()
        if self.customer is None:
            raise ValidationError(message)


class CustomerSiteFields:
    """The customer box and that customer's site, for any back-office form that creates
    something for a customer (`site_choices` fills the sites)."""

    customer = CustomerField("Customer", validators=[Length(max=200)])
    site_id = SelectField("Site", coerce=int, choices=[NO_SITE], default=0)


class SiteChoiceForm(CustomerSiteFields, FlaskForm):
    """Only the customer and site fields: the site options htmx refreshes."""


class InvoiceForm(CustomerSiteFields, FlaskForm):
    """An invoice with its lines; without lines, the total is typed."""

    number = StringField(
        "Invoice number",
        validators=[DataRequired("Enter the invoice number."), Length(max=50), CODE],
    )
    issue_date = DateField("Issue date", validators=[InputRequired("Enter the issue date.")])
    due_date = DateField("Due date", validators=[InputRequired("Enter the due date.")])
    currency = SelectField("Currency", choices=["USD", "EUR", "GBP"], default="USD")
    total = StringField("Total (when there are no lines)")
    # No Optional() on these: the inline validators below treat blank as "no discount".
    discount_percent = StringField("Early-payment discount %")
    discount_days = StringField("Discount applies within (days)")
    description = TextAreaField("Description", validators=[Optional(), Length(max=2000)])
    lines = FieldList(FormField(LineForm), min_entries=0)

    def validate_due_date(self, field):
        if self.issue_date.data and field.data and field.data < self.issue_date.data:
            raise ValidationError("The due date cannot be before the issue date.")

    def validate_total(self, field):
        if any(not line.form.is_blank for line in self.lines):
            field.cents = None
            return
        if not (field.data or "").strip():
            raise ValidationError("Enter the total, or add lines.")
        field.cents = money_to_cents(field.data, "total")

    def validate_discount_percent(self, field):
        field.bp = 0
        if not (field.data or "").strip():
            return
        try:
            value = Decimal(field.data.strip().rstrip("%"))
        except InvalidOperation as exc:
            raise ValidationError("Enter a percentage like 2 or 1.5.") from exc
        if not value.is_finite() or value < 0 or value >= 100:
            raise ValidationError("Enter a percentage between 0 and 100.")
        if value != value.quantize(Decimal("0.01")):
            raise ValidationError("Use at most two decimals.")
        field.bp = int(value * 100)

    def validate_discount_days(self, field):
        field.days = 0
        text = (field.data or "").strip()
        if not text:
            if (self.discount_percent.data or "").strip():
                raise ValidationError("Say within how many days the discount applies.")
            return
        if not text.isdigit() or int(text) > 365:
            raise ValidationError("Enter a number of days from 0 to 365.")
        field.days = int(text)

    def line_values(self) -> list[dict]:
        """The non-blank lines as typed values (after validation)."""
        return [
            {
                "item_code": (line.form.item_code.data or "").strip(),
                "description": line.form.description.data.strip(),
                "quantity_milli": line.form.quantity.milli,
                "unit_price_cents": line.form.unit_price.cents,
            }
            for line in self.lines
            if not line.form.is_blank
        ]

    def values(self) -> dict:
        """Typed invoice values (after validation)."""
        return {
            "number": self.number.data.strip(),
            "customer_id": self.customer.customer.id,
            "site_id": self.site_id.data or None,
            "issue_date": self.issue_date.data,
            "due_date": self.due_date.data,
            "currency": self.currency.data,
            "total_cents": self.total.cents,
            "discount_bp": self.discount_percent.bp,
            "discount_days": self.discount_days.days,
            "description": (self.description.data or "").strip(),
        }


class VoidForm(FlaskForm):
    """A reason for voiding or rejecting something."""

    reason = StringField(
        "Reason", validators=[DataRequired("Say why, for the audit log."), Length(max=255)]
    )


IMPORT_KINDS = [
    SelectChoice("customers", "Customers"),
    SelectChoice("sites", "Sites"),
    SelectChoice("contacts", "Contacts"),
    SelectChoice("invoices", "Invoices"),
    SelectChoice("products", "Products"),
    SelectChoice("prices", "Customer prices"),
    SelectChoice("orders", "Sales orders"),
    SelectChoice("order_lines", "Sales order lines"),
    SelectChoice("shipments", "Shipments"),
]


class ImportForm(FlaskForm):
    """A CSV file to import."""

    kind = SelectField("What the file holds", choices=IMPORT_KINDS)
    file = FileField(
        "CSV file",
        validators=[
            FileRequired("Choose a CSV file."),
            FileAllowed(["csv", "txt"], "Choose a .csv file."),
        ],
    )


# --- payments ---------------------------------------------------------------------------


class PaymentFilterForm(Form):
    """The GET filter above the payments list (no CSRF: it changes nothing)."""

    q = StringField("Search")
    status = SelectField(
        "Status",
        choices=[
            SelectChoice("", "All"),
            SelectChoice("pending", "Pending confirmation"),
            SelectChoice("applied", "Applied"),
            SelectChoice("rejected", "Rejected"),
            SelectChoice("void", "Void"),
        ],
        default="",
    )
    flagged = BooleanField("Flagged only")
    posted = SelectField(
        "Export",
        choices=[
            SelectChoice("", "Exported or not"),
            SelectChoice("no", "Not exported yet"),
            SelectChoice("yes", "Exported"),
        ],
        default="",
    )
    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])


class NoteForm(FlaskForm):
    """A note when clearing a flag."""

    note = StringField(
        "Note", validators=[DataRequired("Say what was done about it."), Length(max=255)]
    )


# --- audit ------------------------------------------------------------------------------


class AuditFilterForm(Form):
    """Filters for the audit log (GET)."""

    action = StringField(
        "Action",
        validators=[Optional(), Length(max=100)],
        render_kw={"list": "audit-actions", "placeholder": "e.g. settings. or invoice.voided"},
    )
    actor = StringField("Who", validators=[Optional(), Length(max=320)])
    object_type = StringField("Object type", validators=[Optional(), Length(max=50)])
    object_id = StringField("Object id", validators=[Optional(), Length(max=100)])
    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])


# --- staff users ------------------------------------------------------------------------


STAFF_ROLE_CHOICES = [
    SelectChoice("agent", "Agent: customers, invoices, payments, cases"),
    SelectChoice("admin", "Admin: also settings, staff and the audit log"),
]


class StaffCreateForm(FlaskForm):
    """A new back-office login."""

    email = EmailField(
        "Email",
        validators=[
            DataRequired("Enter their email."),
            Email("Enter a valid email address."),
            Length(max=320),
        ],
    )
    name = StringField("Name", validators=[Optional(), Length(max=255)])
    role = RadioField("Role", choices=STAFF_ROLE_CHOICES, default="agent")
    password = PasswordField(
        "First password",
        validators=[
            DataRequired("Choose a first password."),
            Length(min=12, max=200, message="Use 12 to 200 characters."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class StaffEditForm(FlaskForm):
    """Name and role of a back-office login."""

    name = StringField("Name", validators=[Optional(), Length(max=255)])
    role = RadioField("Role", choices=STAFF_ROLE_CHOICES)


class StaffPasswordForm(FlaskForm):
    """An admin sets a new password for a staff member (their sessions end)."""

    password = PasswordField(
        "New password",
        validators=[
            DataRequired("Choose a password."),
            Length(min=12, max=200, message="Use 12 to 200 characters."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


def today() -> date:
    """The business date (a seam for forms' defaults)."""
    return clock.business_today()


__all__ = ["HiddenField"]
