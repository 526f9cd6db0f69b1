"""Autopay (issue 14): a company admin turns it on with a saved card, a maximum per invoice and
when to charge; the worker charges each due invoice once, emails the receipt or the failure,
retries with back-off, stops after repeated failures and tells the admins. Against the suite's
own Stripe on loopback (tests/stripe_fake: localstripe plus Checkout and the bank's page)."""

import threading
from datetime import date, timedelta

import pytest

from portal.db import utcnow
from portal.models import (
    AuditLog,
    Autopay,
    AutopayCharge,
    AutopayConsent,
    Invoice,
    OutboxMessage,
    Payment,
    PaymentAttempt,
    SavedMethod,
)
from portal.services import autopay, outbox, saved_methods

from . import factories, stripe_fixtures
from .conftest import login, staff_login

stripe_fake = stripe_fixtures.stripe_fake
stripe_env = stripe_fixtures.stripe_env
app = stripe_fixtures.stripe_app

TODAY = date.today()
DECLINED = "4000000000000341"  # saves, then every charge is declined
THREE_D_SECURE = "4000002500003155"  # the bank asks the payer to authenticate each charge


def card(customer, number="4242424242424242", user=None) -> SavedMethod:
    """A card saved at Stripe for the customer, as the setup flow leaves it."""
    client = _stripe()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": TODAY.year + 3, "cvc": "123"},
        }
    )
    stripe_customer = saved_methods.stripe_customer(customer)
    client.v1.payment_methods.attach(method.id, params={"customer": stripe_customer})
    return SavedMethod.create(
        customer=customer, method_id=method.id, brand="visa", last4=number[-4:], saved_by=user
    )


def _stripe():
    """Stripe's official client, pointed at this test's fake."""
    return _ENV[0].client()


_ENV = []


@pytest.fixture(autouse=True)
def _env(app, stripe_env):
    _ENV[:] = [stripe_env]
    yield
    _ENV.clear()


@pytest.fixture
def acme(app):
    customer = factories.customer(name="Acme Manufacturing")
    admin = factories.portal_user(customer, email="pat@acme.example", first_name="Pat")
    return customer, admin


def enrol(client, method, max_amount="1000.00", timing="due", days="3", consent=True):
    data = {"method": str(method.id), "max_amount": max_amount, "timing": timing}
    data["days_before"] = days
    if consent:
        data["consent"] = "y"
    return client.post("/company/autopay/", data=data)


def kinds_to(address: str) -> list[str]:
    return [
        m.kind
        for m in OutboxMessage.select()
        .where(OutboxMessage.to_addr == address)
        .order_by(OutboxMessage.id)
    ]


def test_an_admin_turns_autopay_on_with_consent_recorded(app, client, acme):
    customer, admin = acme
    method = card(customer, user=admin)
    login(client, admin.email)
    page = client.get("/company/autopay/").get_data(as_text=True)
    assert "Autopay is off" in page and "Visa •••• 4242" in page

    # Bad input: the message next to its field, what was typed kept, nothing written.
    refused = enrol(client, method, max_amount="ten", consent=False)
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'value="ten"' in text
    assert "Enter an amount" in text
    refused = enrol(client, method, consent=False)
    assert refused.status_code == 422 and "Tick the box to authorise" in refused.text
    refused = enrol(client, method, timing="before", days="45")
    assert refused.status_code == 422 and "from 1 to 30" in refused.text
    refused = enrol(client, method, max_amount="€500")  # A10: not this account's currency
    assert refused.status_code == 422 and "USD" in refused.text
    assert Autopay.select().count() == 0 and AutopayConsent.select().count() == 0

    response = enrol(client, method, max_amount="1,500.00", timing="before", days="5")
    assert response.status_code == 303
    enrolment = Autopay.get(Autopay.customer == customer.id)
    assert (enrolment.max_cents, enrolment.timing, enrolment.days_before) == (150_000, "before", 5)
    assert enrolment.active and enrolment.starts_on == TODAY and enrolment.currency == "USD"
    consent = AutopayConsent.get()
    assert consent.version == autopay.CONSENT_VERSION and consent.user_id == admin.id
    for words in ("Visa •••• 4242", "Acme Manufacturing", "$1,500.00", "5 days before"):
        assert words in consent.text
    assert AuditLog.select().where(AuditLog.action == "autopay.enrolled").exists()
    page = client.get("/company/autopay/").get_data(as_text=True)
    assert "Autopay is on" in page and "$1,500.00" in page and "version 1" in page

    # Turned off: nothing more is charged; audited.
    off = client.post("/company/autopay/off")
    assert off.status_code == 303 and not Autopay.get_by_id(enrolment.id).active
    assert AuditLog.select().where(AuditLog.action == "autopay.turned_off").exists()


def test_only_company_admins_and_only_with_stripe(app, client, acme, build_app):
    customer, _ = acme
    buyer = factories.portal_user(customer, email="buyer@acme.example", roles=["invoices"])
    login(client, buyer.email)
    assert client.get("/company/autopay/").status_code == 403  # E1: the role is needed
    assert client.post("/company/autopay/off").status_code == 403


def test_the_worker_charges_exactly_the_due_invoices_once(app, acme, mailbox):
    customer, admin = acme
    method = card(customer, user=admin)
    old, _ = factories.invoice(customer, total_cents=20_000, issue_date=TODAY - timedelta(40))
    soon, _ = factories.invoice(customer, total_cents=30_000, issue_date=TODAY - timedelta(25))
    later, _ = factories.invoice(customer, total_cents=45_000, issue_date=TODAY - timedelta(10))
    big, _ = factories.invoice(customer, total_cents=900_000, issue_date=TODAY - timedelta(20))
    euro, _ = factories.invoice(customer, total_cents=10_000, currency="EUR")
    terms = autopay.terms_from(customer.id, method.id, "5000.00", "due", "")
    autopay.enrol(admin, terms, accepted=True)
    assert [i.number for i in autopay.already_due(customer.id, Autopay.get())] == [old.number]

    assert autopay.run_due(today=TODAY) == 0  # nothing is due yet (the old one is not ours)
    assert autopay.run_due(today=soon.due_date) == 1
    assert Invoice.get_by_id(soon.id).balance_cents == 0
    assert AutopayCharge.get(AutopayCharge.invoice == soon.id).state == "paid"
    payment = Payment.get()
    assert payment.payer_email == admin.email and payment.amount_cents == 30_000
    assert "receipt" in kinds_to(admin.email)

    # Again, the same day, from two workers at once: nothing more is charged.
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(_pass(app, soon.due_date))) for _ in range(2)
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert Payment.select().count() == 1

    # The big one's day: over the maximum, not charged; the admins are told.
    assert autopay.run_due(today=big.due_date) == 1
    skipped = AutopayCharge.get(AutopayCharge.invoice == big.id)
    assert skipped.state == "skipped" and "over your autopay limit" in skipped.last_error
    assert Invoice.get_by_id(big.id).balance_cents == 900_000
    assert kinds_to(admin.email).count("autopay_failed") == 1

    assert autopay.run_due(today=later.due_date + timedelta(days=2)) == 1
    assert Invoice.get_by_id(later.id).balance_cents == 0
    assert autopay.run_due(today=later.due_date + timedelta(days=60)) == 0
    paid = {c.invoice_id for c in AutopayCharge.select().where(AutopayCharge.state == "paid")}
    assert paid == {soon.id, later.id}
    assert Invoice.get_by_id(old.id).balance_cents == 20_000  # left to pay by hand
    assert Invoice.get_by_id(euro.id).balance_cents == 10_000  # another currency
    assert Payment.select().count() == 2
    # Stripe charged exactly the two invoices, once each.
    intents = _stripe().v1.payment_intents.list().data
    assert sorted(i.amount for i in intents if i.status == "succeeded") == [30_000, 45_000]
    outbox.deliver_due()
    subjects = [m["Subject"] for m in mailbox.to(admin.email)]
    assert any("could not pay invoice " + big.number in s for s in subjects)


def _pass(app, today):
    from portal.db import db

    with app.app_context():
        db.connect(reuse_if_open=True)
        try:
            return autopay.run_due(today=today)
        finally:
            db.close()


@pytest.mark.parametrize(
    ("timing", "days", "charge_day"),
    [("before", "7", lambda i: i.due_date - timedelta(7)), ("issue", "", lambda i: i.issue_date)],
)
def test_charging_days_before_the_due_date_or_on_issue(app, acme, timing, days, charge_day):
    customer, admin = acme
    method = card(customer, user=admin)
    invoice, _ = factories.invoice(customer, total_cents=12_000, issue_date=TODAY + timedelta(3))
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "500", timing, days), True)
    day = charge_day(invoice)
    assert autopay.run_due(today=day - timedelta(days=1)) == 0
    assert Invoice.get_by_id(invoice.id).balance_cents == 12_000
    assert autopay.run_due(today=day) == 1
    assert Invoice.get_by_id(invoice.id).balance_cents == 0


def test_a_declined_card_is_retried_with_backoff_then_autopay_stops(app, acme):
    customer, admin = acme
    other_admin = factories.portal_user(customer, email="lee@acme.example", first_name="Lee")
    method = card(customer, DECLINED, user=admin)
    invoice, _ = factories.invoice(customer, total_cents=25_000, issue_date=TODAY)
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "500", "issue", ""), True)
    now = utcnow()

    assert autopay.run_due(now=now, today=TODAY) == 1
    charge = AutopayCharge.get()
    assert (charge.state, charge.tries) == ("retry", 1)
    assert "declined" in charge.last_error.lower()
    assert charge.next_try_at >= now + timedelta(hours=23)
    assert Invoice.get_by_id(invoice.id).balance_cents == 25_000
    for address in (admin.email, other_admin.email):
        assert kinds_to(address) == ["autopay_failed"]
    assert "try again on" in OutboxMessage.get(OutboxMessage.to_addr == admin.email).body_text

    assert autopay.run_due(now=now + timedelta(hours=2), today=TODAY) == 0  # not yet
    assert autopay.run_due(now=now + timedelta(days=1, hours=1), today=TODAY) == 1
    assert AutopayCharge.get().tries == 2 and Autopay.get().active
    assert autopay.run_due(now=now + timedelta(days=5), today=TODAY) == 1
    charge = AutopayCharge.get()
    assert (charge.state, charge.tries, charge.next_try_at) == ("failed", 3, None)
    enrolment = Autopay.get()
    assert not enrolment.active and "3 charges failed in a row" in enrolment.stopped_reason
    assert kinds_to(other_admin.email) == ["autopay_failed"] * 3 + ["autopay_stopped"]
    assert AuditLog.select().where(AuditLog.action == "autopay.stopped").exists()
    assert Payment.select().count() == 0 and Invoice.get_by_id(invoice.id).balance_cents == 25_000
    # Stopped: nothing more is tried.
    assert autopay.run_due(now=now + timedelta(days=30), today=TODAY + timedelta(30)) == 0


def test_a_card_whose_bank_asks_to_authenticate_is_not_charged_off_session(app, acme):
    customer, admin = acme
    method = card(customer, THREE_D_SECURE, user=admin)
    factories.invoice(customer, total_cents=8_000, issue_date=TODAY)
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "500", "issue", ""), True)
    assert autopay.run_due(today=TODAY) == 1
    charge = AutopayCharge.get()
    assert charge.state == "retry" and "confirm this payment" in charge.last_error
    assert PaymentAttempt.get().status == "failed" and Payment.select().count() == 0


def test_a_crash_between_charging_and_recording_never_charges_twice(app, acme, monkeypatch):
    """The worker dies after Stripe charged the card, before the charge row learnt of it: the
    next pass finds the attempt from the invoice and records it paid, without a second charge."""
    customer, admin = acme
    method = card(customer, user=admin)
    invoice, _ = factories.invoice(customer, total_cents=33_000, issue_date=TODAY)
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "500", "issue", ""), True)
    real_update = autopay._update

    def crash(charge, **values):
        if "attempt" in values:
            raise KeyboardInterrupt("killed")
        return real_update(charge, **values)

    monkeypatch.setattr(autopay, "_update", crash)
    with pytest.raises(KeyboardInterrupt):
        autopay.run_due(today=TODAY)
    monkeypatch.setattr(autopay, "_update", real_update)
    assert AutopayCharge.get().state == "charging" and AutopayCharge.get().attempt_id is None
    assert autopay.run_due(today=TODAY) == 1
    assert AutopayCharge.get().state == "paid" and Payment.select().count() == 1
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    intents = _stripe().v1.payment_intents.list().data
    assert len(intents) == 1


def test_a_crash_before_any_attempt_is_charged_once_later(app, acme):
    """A `charging` row with no attempt (the worker died before it reached Stripe) is tried
    again once it is clearly stuck, and charged once."""
    customer, admin = acme
    method = card(customer, user=admin)
    invoice, _ = factories.invoice(customer, total_cents=5_000, issue_date=TODAY)
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "500", "issue", ""), True)
    stuck_since = utcnow() - timedelta(minutes=30)
    AutopayCharge.create(
        customer=customer,
        invoice=invoice,
        amount_cents=5_000,
        created_at=stuck_since,
        updated_at=stuck_since,
    )
    assert autopay.run_due(today=TODAY) >= 1
    assert AutopayCharge.get().state == "paid" and Payment.select().count() == 1


def test_removing_the_card_stops_autopay_and_tells_the_admins(app, client, acme):
    customer, admin = acme
    method = card(customer, user=admin)
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "500", "due", ""), True)
    login(client, admin.email)
    assert client.post("/account/cards/remove", data={"saved_method": method.id}).status_code == 303
    enrolment = Autopay.get()
    assert not enrolment.active and "was removed" in enrolment.stopped_reason
    assert kinds_to(admin.email) == ["autopay_stopped"]
    assert "Autopay stopped" in client.get("/company/autopay/").text


def test_staff_see_who_is_enrolled(app, client, acme):
    customer, admin = acme
    method = card(customer, user=admin)
    autopay.enrol(admin, autopay.terms_from(customer.id, method.id, "750", "due", ""), True)
    staff = factories.staff()
    staff_login(client, staff.email)
    page = client.get("/staff/autopay/").get_data(as_text=True)
    assert "Acme Manufacturing" in page and "$750.00" in page and "Visa •••• 4242" in page
    assert admin.email in page and "On the due date" in page


def _pay_with(client, admin, method, invoice):
    """The admin signs in and pays the whole invoice with a saved card in one step."""
    login(client, admin.email)
    return client.post(
        "/invoices/pay",
        data={
            "line": [f"{invoice.public_id}:{invoice.total_cents}"],
            "payer_name": "Pat",
            "payer_email": admin.email,
            "provider": f"saved-{method.id}",
        },
    )


def test_saved_card_payment_goes_through_the_banks_authentication(app, client, acme, stripe_env):
    """On-session, when the bank asks, the payer is sent through Stripe's authentication page
    and comes back to a paid invoice (3-D Secure)."""
    customer, admin = acme
    method = card(customer, THREE_D_SECURE, user=admin)
    invoice, _ = factories.invoice(customer, total_cents=14_000)
    response = _pay_with(client, admin, method, invoice)
    assert response.status_code == 303, response.text[:500]
    bank = response.headers["Location"]
    assert "/c/authenticate/pi_" in bank
    assert Invoice.get_by_id(invoice.id).balance_cents == 14_000  # not until the bank says so
    back = stripe_env.authenticate(bank.rsplit("/", 1)[-1], success=True)
    path = "/" + back.split("://", 1)[1].split("/", 1)[1]
    landed = client.get(path)
    assert landed.status_code == 303 and "/payments/" in landed.headers["Location"]
    stripe_env.wait_idle()
    assert Invoice.get_by_id(invoice.id).balance_cents == 0
    assert Payment.select().count() == 1 and Payment.get().status == "applied"


def test_a_failed_authentication_leaves_the_invoice_open(app, client, acme, stripe_env):
    customer, admin = acme
    method = card(customer, THREE_D_SECURE, user=admin)
    invoice, _ = factories.invoice(customer, total_cents=9_000)
    response = _pay_with(client, admin, method, invoice)
    back = stripe_env.authenticate(response.headers["Location"].rsplit("/", 1)[-1], False)
    client.get("/" + back.split("://", 1)[1].split("/", 1)[1])
    stripe_env.wait_idle()
    assert PaymentAttempt.get().status == "failed"
    assert Payment.select().count() == 0 and Invoice.get_by_id(invoice.id).balance_cents == 9_000
