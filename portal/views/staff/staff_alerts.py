"""My alerts: the signed-in staff login chooses how it hears about each kind of office
alert (an email at once, the daily summary, or not at all)."""

from flask import Blueprint, flash, url_for
from flask_wtf import FlaskForm
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from ...services import alerts
from ...web import redirect_to, render
from ._common import guard, me

bp = Blueprint("staff_alerts", __name__, url_prefix="/staff/alerts")
guard(bp)


def _form(staff) -> FlaskForm:
    """One radio group per alert kind, filled with the login's choices (or its defaults)."""

    class AlertChoicesForm(FlaskForm):
        pass

    for kind, about in alerts.KINDS.items():
        setattr(
            AlertChoicesForm,
            kind,
            RadioField(
                about.label,
                choices=[SelectChoice(value, label) for value, label in alerts.DELIVERIES.items()],
                validators=[InputRequired("Choose how you get these alerts.")],
                description=about.help,
            ),
        )
    return AlertChoicesForm(data=alerts.choices(staff))


def _page(form, status=200):
    staff = me()
    return render(
        "staff/alerts/edit.html",
        block="form",
        status=status,
        form=form,
        kinds=alerts.KINDS,
        defaults={kind: alerts.default_delivery(staff, kind) for kind in alerts.KINDS},
        deliveries=alerts.DELIVERIES,
        digest_hour=alerts.DIGEST_HOUR,
    )


@bp.get("/")
def edit():
    """The signed-in login's alert choices."""
    return _page(_form(me()))


@bp.post("/")
def update():
    """Save the signed-in login's alert choices (only its own: no id in the URL)."""
    form = _form(me())
    if not form.validate():
        return _page(form, status=422)
    changed = alerts.save_choices(me(), {kind: form[kind].data for kind in alerts.KINDS})
    flash("Your alert choices are saved." if changed else "Nothing changed.", "success")
    return redirect_to(url_for("staff_alerts.edit"))
