"""Support case forms: a customer opens a case or replies; staff answer and set the status."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from ..services.cases import STATUS_LABELS


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
    invoice = HiddenField(validators=[Optional()])
    order = HiddenField(validators=[Optional()])


class ReplyForm(FlaskForm):
    """The customer's reply on a case."""

    body = TextAreaField(
        "Your reply", validators=[DataRequired("Write a reply first."), Length(max=10000)]
    )


class StaffReplyForm(FlaskForm):
    """A staff answer or internal note, with the case's new status."""

    body = TextAreaField("Message", validators=[Optional(), Length(max=10000)])
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
            and self.status.data == self.status.object_data
        ):
            self.body.errors = ["Write a message or change the status."]
            return False
        return ok
