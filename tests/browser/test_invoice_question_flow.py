"""Issue 17: "Question this invoice" ends on the new case with a confirmation (it used to
stay on the invoice with the form still filled, and a second click made a duplicate)."""

from playwright.sync_api import expect

from portal.models import Case

from .. import factories


def test_question_this_invoice_ends_on_the_new_case(page):
    customer = factories.customer(name="Acme Manufacturing")
    factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    invoice, _ = factories.invoice(customer, number="INV-9100", total_cents=12_000)
    page.goto("/login")
    page.get_by_label("Email").fill("pat@acme.example")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Welcome, Pat")).to_be_visible()
    page.goto(f"/invoices/{invoice.public_id}")
    page.get_by_text("Something wrong with this invoice?").click()
    page.get_by_label("Subject").fill("Wrong quantity")
    page.get_by_label("Your question").fill("We ordered 2, not 3.")
    page.get_by_role("button", name="Send question").click()
    expect(page.get_by_text("Thank you. Your question is case")).to_be_visible()
    case = Case.get()
    assert page.url.endswith(f"/cases/{case.public_id}")
    expect(page.get_by_role("heading", name="Wrong quantity")).to_be_visible()
    expect(page.get_by_text("We ordered 2, not 3.")).to_be_visible()
    assert Case.select().count() == 1 and case.invoice_id == invoice.id
