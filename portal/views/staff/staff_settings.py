"""Portal settings (staff admins): messages, terms, payment options, switches, email templates."""

from flask import Blueprint, abort, flash, request, url_for
from markupsafe import Markup

from ...auth import fresh_required
from ...forms.staff import MARKDOWN_FIELDS, EmailTemplateForm, SettingsForm
from ...services import email_templates, settings
from ...services.email_templates import TemplateProblem
from ...web import markdown_filter, redirect_to, render
from ._common import guard, me

bp = Blueprint("staff_settings", __name__, url_prefix="/staff/settings")
guard(bp, admin=True)


def _previews(form) -> dict:
    """Sanitized HTML of each Markdown field as typed, for the side-by-side previews."""
    return {name: markdown_filter(getattr(form, name).data or "") for name in MARKDOWN_FIELDS}


def _page(form, status=200):
    return render(
        "staff/settings/edit.html",
        block="form",
        status=status,
        form=form,
        previews=_previews(form),
        kinds=email_templates.kinds(),
        customized=email_templates.customized_kinds(),
        label=email_templates.label,
        purpose=email_templates.purpose,
    )


@bp.get("/")
def edit():
    """The settings page, filled with the values in effect."""
    return _page(SettingsForm.from_settings(settings.load()))


@bp.post("/")
@fresh_required
def update():
    """Save the settings (each change audited); 422 keeps what was typed."""
    form = SettingsForm()
    if not form.validate():
        return _page(form, status=422)
    if request.form.get("action") == "preview":
        # The no-JavaScript preview: show the page with the previews, save nothing.
        return _page(form)
    changed = settings.update(form.to_settings())
    if changed:
        flash(
            f"Settings saved ({len(changed)} change{'s' if len(changed) != 1 else ''}).", "success"
        )
    else:
        flash("Nothing changed.", "info")
    return redirect_to(url_for("staff_settings.edit"))


@bp.post("/preview/<name>")
def preview(name):
    """The live (htmx) preview of one Markdown field, sanitized exactly as customers see it."""
    if name not in MARKDOWN_FIELDS:
        abort(404)
    html = markdown_filter(request.form.get(name, ""))
    if not html.strip():
        html = Markup('<p class="muted">Nothing to show yet.</p>')
    return render("staff/settings/_preview.html", html=html)


# --- email templates --------------------------------------------------------------------


def _kind_or_404(kind: str) -> str:
    if kind not in email_templates.kinds():
        abort(404)
    return kind


def _template_page(kind, form, status=200, rendered=None, problem=None):
    if rendered is None and problem is None and form.subject.data is not None:
        try:
            rendered = email_templates.validate(kind, form.subject.data, form.body.data)
        except TemplateProblem as exc:
            # A saved text that no longer fits its placeholders: the built-in one is sent
            # instead, and staff should see why.
            problem = exc if not form.errors else None
    if problem is not None:
        getattr(form, problem.field).errors = list(getattr(form, problem.field).errors) + [
            problem.message
        ]
    return render(
        "staff/settings/email.html",
        block="form",
        status=status,
        kind=kind,
        form=form,
        rendered=rendered,
        label=email_templates.label(kind),
        purpose=email_templates.purpose(kind),
        placeholders=email_templates.placeholders(kind),
        customized=kind in email_templates.customized_kinds(),
        default=email_templates.default(kind),
    )


@bp.get("/emails/<kind>")
def email(kind):
    """One email template: the text in use, its placeholders and a preview."""
    kind = _kind_or_404(kind)
    subject, body = email_templates.current(kind)
    return _template_page(kind, EmailTemplateForm(data={"subject": subject, "body": body}))


def _checked(kind):
    """The posted template form, validated; (form, rendered, problem)."""
    form = EmailTemplateForm()
    if not form.validate():
        return form, None, TemplateProblem("body", "Check the fields marked below.")
    try:
        rendered = email_templates.validate(kind, form.subject.data, form.body.data)
    except TemplateProblem as problem:
        return form, None, problem
    return form, rendered, None


@bp.post("/emails/<kind>")
@fresh_required
def save_email(kind):
    """Store staff's version of a template (validated and audited)."""
    kind = _kind_or_404(kind)
    form, _, problem = _checked(kind)
    if problem is not None:
        return _template_page(kind, form, status=422, problem=_own(form, problem))
    if email_templates.save(kind, form.subject.data, form.body.data, me()):
        flash(f"The {email_templates.label(kind).lower()} email is saved.", "success")
    else:
        flash("Nothing changed.", "info")
    return redirect_to(url_for("staff_settings.email", kind=kind))


@bp.post("/emails/<kind>/preview")
def preview_email(kind):
    """The template as typed, filled with sample values (live preview, or the no-JS button)."""
    kind = _kind_or_404(kind)
    form, rendered, problem = _checked(kind)
    if request.htmx:
        return render(
            "staff/settings/_email_preview.html",
            rendered=rendered,
            problem=problem,
            status=200,
        )
    status = 422 if problem is not None else 200
    return _template_page(kind, form, status=status, rendered=rendered, problem=_own(form, problem))


@bp.post("/emails/<kind>/test")
def test_email(kind):
    """Send the template as typed, with sample values, to the signed-in staff member."""
    kind = _kind_or_404(kind)
    form, _, problem = _checked(kind)
    if problem is not None:
        return _template_page(kind, form, status=422, problem=_own(form, problem))
    email_templates.send_test(kind, form.subject.data, form.body.data, me())
    flash(f"A test email is on its way to {me().email}.", "success")
    return _template_page(kind, form)


@bp.post("/emails/<kind>/reset")
@fresh_required
def reset_email(kind):
    """Go back to the built-in text of a template (audited)."""
    kind = _kind_or_404(kind)
    EmailTemplateForm()  # CSRF is checked by CSRFProtect for every POST
    if email_templates.reset(kind, me()):
        flash("The built-in text is back in use.", "success")
    return redirect_to(url_for("staff_settings.email", kind=kind))


def _own(form, problem):
    """A field-level WTForms failure is already shown next to its field: do not repeat it."""
    if problem is None or form.errors:
        return None
    return problem
