"""Support case forms: a customer opens a case or replies; staff answer and set the status."""

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    MultipleFileField,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from ..models import StaffUser
from ..services import attachments
from ..services.cases import PRIORITIES, STATUS_LABELS, categories


class AttachmentsField(MultipleFileField):
    """Files for a message, checked by content (`attachments.prepare`); after validation,
    `prepared` holds them ready to store. A refused file fails the whole field."""

    prepared = ()

    def __init__(self, *args, per: str = "message", **kwargs):
        super().__init__(*args, **kwargs)
        self.per = per  # what the files go with, in the count limit's message

    def pre_validate(self, form):
        try:
            self.prepared = attachments.prepare(self.data, self.per)
        except attachments.Refused as refused:
            self.prepared = ()
            raise ValidationError(str(refused)) from None


def files_field(per: str = "message"):
    return AttachmentsField(
        "Attach files", render_kw={"accept": attachments.ACCEPT}, validators=[Optional()], per=per
    )


class CaseForm(FlaskForm):
    """A new case; `invoice` or `order` carries the public id of what the case is about."""

    subject = StringField(
        "Subject",
        validators=[DataRequired("Say in a few words what this is about."), Length(max=200)],
    )
    body = TextAreaField(
        "How can we help?",
        validators=[DataRequired("Describe the question or problem."), Length(max=10000)],
    )
    category = SelectField("Category", validate_choice=False)
    files = files_field()
    invoice = HiddenField(validators=[Optional()])
    order = HiddenField(validators=[Optional()])
    # One post of this form opens one case (a double click returns the same case).
    request_key = HiddenField(validators=[Optional(), Length(max=64)])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = categories()
        self.category.choices = [SelectChoice("", "Choose…")] + [
            SelectChoice(name, name) for name in names
        ]
        if not names:
            del self.category

    def validate_category(self, field):
        if field.data and field.data not in categories():
            raise ValidationError("Choose a category from the list.")


class ReplyForm(FlaskForm):
    """The customer's reply on a case."""

    body = TextAreaField(
        "Your reply", validators=[DataRequired("Write a reply first."), Length(max=10000)]
    )
    files = files_field()


class StaffReplyForm(FlaskForm):
    """A staff answer or internal note, with the case's new status."""

    body = TextAreaField("Message", validators=[Optional(), Length(max=10000)])
    files = files_field()
    internal = BooleanField("Internal note (not shown to the customer, not emailed)")
    status = SelectField(
        "Status",
        choices=[
            SelectChoice(key, label.replace("Waiting for you", "Waiting for the customer"))
            for key, label in STATUS_LABELS.items()
        ],
    )

    def validate(self, extra_validators=None) -> bool:
        """Something must happen: a message, or a change of status."""
        ok = super().validate(extra_validators)
        if (
            ok
            and not (self.body.data or "").strip()
            and not self.files.prepared
            and self.status.data == self.status.object_data
        ):
            self.body.errors = ["Write a message or change the status."]
            return False
        return ok


class CaseDetailsForm(FlaskForm):
    """Staff: what the case is about, how urgent, and who in the office has it."""

    category = SelectField("Category")
    priority = SelectField(
        "Priority", choices=[SelectChoice(key, label) for key, label in PRIORITIES.items()]
    )
    assigned_to = SelectField("Owner")

    def __init__(self, case, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = categories()
        if case.category and case.category not in names:
            names.append(case.category)  # a category since removed from settings stays
        self.category.choices = [SelectChoice("", "None")] + [SelectChoice(n, n) for n in names]
        staff = StaffUser.select().where(StaffUser.active == True).order_by(StaffUser.name)  # noqa: E712
        self.assigned_to.choices = [SelectChoice("", "Nobody")] + [
            SelectChoice(str(s.id), s.name or s.email) for s in staff
        ]
