"""Office alerts (issue 18): an autopay charge the card refuses is a failed payment the
office hears about (the suite's Stripe fake declines the card), once per failed try."""

from portal.models import AutopayCharge
from portal.services import alerts, autopay, outbox

from . import factories, stripe_fixtures
from .test_autopay import DECLINED, TODAY, _env, card  # noqa: F401 (_env: autouse fixture)

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
app = stripe_fixtures.stripe_app


def test_a_declined_autopay_charge_alerts_the_office(app, mailbox):
    customer = factories.customer(name="Acme Manufacturing")
    admin = factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    boss = factories.staff(email="boss@harbor.example", admin=True)
    agent = factories.staff(email="sam@harbor.example")
    method = card(customer, DECLINED, user=admin)
    invoice, _ = factories.invoice(customer, total_cents=25_000, issue_date=TODAY)
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "500", "issue", ""), True)

    assert autopay.run_due(today=TODAY) == 1
    outbox.deliver_due()

    charge = AutopayCharge.get()
    (message,) = [m for m in mailbox.to(boss.email) if m["Auto-Submitted"] == "auto-generated"]
    subject = " ".join(message["Subject"].split())
    assert f"Autopay could not charge invoice {invoice.number} of Acme Manufacturing" in subject
    assert "http://localhost/staff/autopay/" in message.get_content()
    # The agent reads payment problems in the daily summary by default.
    assert [m for m in mailbox.to(agent.email) if m["Auto-Submitted"]] == []
    assert alerts.choices(agent)["payment_problem"] == "digest"
    assert charge.last_error and charge.last_error in subject
