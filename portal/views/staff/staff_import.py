"""CSV import in the back office: customers, sites, contacts, invoices; all rows or none."""

from flask import Blueprint, request

from ...forms.staff import IMPORT_KINDS, ImportForm
from ...services.importer import SPECS, import_csv
from ...web import render
from ._common import guard

bp = Blueprint("staff_import", __name__, url_prefix="/staff/import")
guard(bp)


def _page(form, result=None, status=200):
    return render(
        "staff/import/new.html",
        block="result",
        status=status,
        form=form,
        result=result,
        columns={choice.value: SPECS[choice.value].columns for choice in IMPORT_KINDS},
        required={choice.value: SPECS[choice.value].required for choice in IMPORT_KINDS},
        labels={choice.value: choice.label for choice in IMPORT_KINDS},
    )


@bp.get("/")
def new():
    """The import page: what each file must hold, and the upload form."""
    form = ImportForm(kind=request.args.get("kind", "customers"))
    return _page(form)


@bp.post("/")
def create():
    """Import one file: every row is written, or none and every bad line is reported."""
    form = ImportForm()
    if not form.validate():
        return _page(form, status=422)
    result = import_csv(form.kind.data, form.file.data.stream)
    return _page(form, result=result, status=200 if result.ok else 422)
