"""The guest's quick request: who they are for, what they need, an optional photo."""

from flask_wtf import FlaskForm
from wtforms import EmailField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from ..services import attachments
from ..services.cases import categories
from .cases import AttachmentsField


class PhotoField(AttachmentsField):
    """At most one file, and it must be a photo."""

    def pre_validate(self, form):
        files = [f for f in self.data or () if getattr(f, "filename", "")]
        if len(files) > 1:
            raise ValidationError("Attach one photo.")
        super().pre_validate(form)
        if any(item.kind not in attachments.IMAGES for item in self.prepared):
            self.prepared = ()
            raise ValidationError("Attach a photo (PNG, JPEG, GIF or WebP).")


class QuickRequestForm(FlaskForm):
    identify = RadioField(
        "How do you want to name the account?",
        choices=[
            SelectChoice("invoice", "Invoice number and quick-pay code"),
            SelectChoice("account", "Account number and site code"),
        ],
        default="invoice",
    )
    invoice_number = StringField("Invoice number", validators=[Length(max=50)])
    quick_pay_code = StringField("Quick-pay code", validators=[Length(max=50)])
    account_number = StringField("Account number", validators=[Length(max=50)])
    site_code = StringField("Site code", validators=[Length(max=50)])
    name = StringField(
        "Your name", validators=[DataRequired("Tell us who you are."), Length(max=100)]
    )
    email = EmailField(
        "Your email",
        validators=[
            DataRequired("We need an email address to answer."),
            Email("Enter a valid email address."),
            Length(max=320),
        ],
    )
    phone = StringField("Phone", validators=[Optional(), Length(max=50)])
    category = SelectField("Category", validate_choice=False)
    description = TextAreaField(
        "What do you need?",
        validators=[DataRequired("Describe what you need."), Length(max=5000)],
    )
    photo = PhotoField("Photo", render_kw={"accept": "image/png,image/jpeg,image/gif,image/webp"})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = categories()
        self.category.choices = [SelectChoice("", "Choose…")] + [SelectChoice(n, n) for n in names]
        if not names:
            del self.category

    def validate_category(self, field):
        if field.data and field.data not in categories():
            raise ValidationError("Choose a category from the list.")

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        needed = (
            (self.invoice_number, "Enter the invoice number."),
            (self.quick_pay_code, "Enter the quick-pay code printed on the invoice."),
        )
        if self.identify.data == "account":
            needed = (
                (self.account_number, "Enter your account number."),
                (self.site_code, "Enter the site code."),
            )
        for field, message in needed:
            if not (field.data or "").strip():
                field.errors = list(field.errors) + [message]
                ok = False
        return ok
