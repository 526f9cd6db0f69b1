"""The business's time zone (issue 13, finding 8): the business's calendar day decides
overdue, aging and discount windows; times show in the viewer's zone with its abbreviation."""

import json
import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask import g
from jinja2 import DictLoader

from portal import clock
from portal.filters import datetimefmt
from portal.models import AuditLog, PortalUser, Setting
from portal.services import settings

from . import factories
from .conftest import login, staff_login

DUE = date(2026, 6, 15)


def at(text: str) -> datetime:
    """A UTC instant from `2026-06-16 06:55`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def overdue_tab(html: str) -> int:
    match = re.search(r'>Overdue <span class="filter-count">(\d+)</span>', html)
    assert match, "no Overdue tab"
    return int(match.group(1))


# The last minutes of the due date and the first of the next day, in the business's zone;
# on one side of each pair UTC's calendar day is already (or still) the other one.
MIDNIGHTS = [
    # 23:55 / 00:05 in Los Angeles (PDT, UTC-7) is 06:55 / 07:05 UTC on the next day.
    ("America/Los_Angeles", at("2026-06-16 06:55"), at("2026-06-16 07:05")),
    # 23:55 / 00:05 in Auckland (NZST, UTC+12) is 11:55 / 12:05 UTC on the same day.
    ("Pacific/Auckland", at("2026-06-15 11:55"), at("2026-06-15 12:05")),
]


@pytest.mark.parametrize("zone, before, after", MIDNIGHTS)
def test_an_invoice_due_today_becomes_overdue_at_the_business_midnight(
    app, client, zone, before, after
):
    """The Overdue tab and the dashboard count the invoice from the business's midnight on."""
    settings.save({"time_zone": zone})
    customer = factories.customer()
    user = factories.portal_user(customer)
    factories.invoice(customer, issue_date=DUE - timedelta(days=30), due_days=30)
    with time_machine.travel(before, tick=False) as traveller:
        login(client, user.email)
        assert clock.business_today() == DUE
        assert overdue_tab(client.get("/invoices/").text) == 0
        assert "nothing past due" in client.get("/").text
        traveller.move_to(after)
        assert clock.business_today() == DUE + timedelta(days=1)
        assert overdue_tab(client.get("/invoices/").text) == 1
        home = client.get("/").text
        assert "1 invoice past the due date" in home and "nothing past due" not in home


@pytest.mark.parametrize("zone, before, after", MIDNIGHTS)
def test_the_aging_bucket_moves_at_the_business_midnight(app, client, zone, before, after):
    """30 days past due is 1–30 days until the business's midnight, then 31–60 days."""
    settings.save({"time_zone": zone})
    customer = factories.customer()
    user = factories.portal_user(customer)
    factories.invoice(customer, total_cents=50_000, issue_date=DUE - timedelta(days=30))
    with time_machine.travel(before + timedelta(days=30), tick=False) as traveller:
        login(client, user.email)
        home = client.get("/").text
        assert "1–30 days: $500.00" in home and "31–60 days: $0.00" in home
        traveller.move_to(after + timedelta(days=30))
        home = client.get("/").text
        assert "1–30 days: $0.00" in home and "31–60 days: $500.00" in home


@pytest.mark.parametrize("zone, before, after", MIDNIGHTS)
def test_the_early_payment_discount_closes_at_the_business_midnight(
    app, client, zone, before, after
):
    """Quick pay offers 2 % off through the last day of the window, business time."""
    settings.save({"time_zone": zone})
    # 2 % within 10 days of Jun 5: the last day of the offer is DUE (Jun 15).
    invoice, code = factories.invoice(
        total_cents=100_000, issue_date=DUE - timedelta(days=10), discount_bp=200, discount_days=10
    )
    with time_machine.travel(before, tick=False) as traveller:
        client.post("/pay/", data={"number": invoice.number, "secret": code})
        page = client.get("/pay/invoice").text
        assert "Pay $980.00 by Jun 15, 2026" in page
        traveller.move_to(after)
        client.post("/pay/", data={"number": invoice.number, "secret": code})
        page = client.get("/pay/invoice").text
        assert "$980.00" not in page and "early-payment discount" not in page


def test_timestamps_show_in_the_business_zone_with_its_abbreviation(app, client):
    """A customer without a zone of their own reads times in the business's zone."""
    settings.save({"time_zone": "America/New_York"})
    user = factories.portal_user()
    with time_machine.travel(at("2026-12-01 21:22"), tick=False):
        login(client, user.email)
        page = client.get("/account/").text
    assert "Signed in since Dec 1, 2026 16:22 EST." in page
    assert "21:22" not in page


def test_a_login_with_its_own_zone_sees_its_own_zone(app, client):
    """My account saves the login's zone; from then on its pages use it, and blank goes back
    to the business's."""
    settings.save({"time_zone": "America/New_York"})
    user = factories.portal_user(first_name="Kiri", last_name="Tane")
    with time_machine.travel(at("2026-12-01 21:22"), tick=False):
        login(client, user.email)
        profile = {"first_name": "Kiri", "last_name": "Tane", "phone": ""}
        response = client.post(
            "/account/profile", data={**profile, "time_zone": "Pacific/Auckland"}
        )
        assert response.status_code == 303
        assert PortalUser.get_by_id(user.id).time_zone == "Pacific/Auckland"
        page = client.get("/account/").text
        # Dec 2 in Auckland while it is still Dec 1 in New York and in UTC.
        assert "Signed in since Dec 2, 2026 10:22 NZDT." in page
        assert '<option selected value="Pacific/Auckland">' in page
        entry = AuditLog.select().where(AuditLog.action == "account.profile_changed").get()
        assert "Pacific/Auckland" in entry.detail

        response = client.post("/account/profile", data={**profile, "time_zone": "Mars/Olympus"})
        assert response.status_code == 422
        assert "Choose a time zone from the list." in response.text
        assert PortalUser.get_by_id(user.id).time_zone == "Pacific/Auckland"

        client.post("/account/profile", data={**profile, "time_zone": ""})
        assert PortalUser.get_by_id(user.id).time_zone == ""
        assert "Signed in since Dec 1, 2026 16:22 EST." in client.get("/account/").text


def test_staff_set_the_business_zone_saved_and_audited(app, client):
    """The settings page offers the zone; an unknown name is refused next to the field."""
    from .test_staff_settings import form_data

    factories.staff(email="boss@example.com", admin=True)
    staff_login(client, "boss@example.com")
    page = client.get("/staff/settings/").text
    assert 'name="time_zone"' in page and '<option selected value="UTC">' in page

    response = client.post("/staff/settings/", data=form_data(time_zone="Europe/Atlantis"))
    assert response.status_code == 422
    assert 'id="time_zone-error"' in response.text
    assert settings.get("time_zone") == "UTC"

    response = client.post("/staff/settings/", data=form_data(time_zone="America/Chicago"))
    assert response.status_code == 303
    assert settings.get("time_zone") == "America/Chicago"
    entry = AuditLog.select().where(AuditLog.action == "settings.changed").get()
    assert entry.object_id == "time_zone" and "America/Chicago" in entry.detail
    with pytest.raises(ValueError):
        settings.save({"time_zone": "Not/A_Zone"})


def test_emails_use_the_business_zone_even_in_a_customers_request(app):
    """A page uses the viewer's zone; an email template rendered in the same request uses the
    business's; `<time datetime>` gets whole seconds in UTC."""
    settings.save({"time_zone": "America/New_York"})
    env = app.jinja_env.overlay(
        loader=DictLoader(
            {
                "email/sample.txt": "{{ t | datetime }}",
                "page.html": "{{ t | datetime }} {{ t | date }} {{ t | isotime }}",
            }
        )
    )
    t = datetime(2026, 12, 1, 21, 22, 5, 123456, tzinfo=UTC)
    with app.test_request_context("/"):
        g.local_zone = ZoneInfo("Pacific/Auckland")  # a customer with their own zone
        assert env.get_template("page.html").render(t=t) == (
            "Dec 2, 2026 10:22 NZDT Dec 2, 2026 2026-12-01T21:22:05+00:00"
        )
        assert env.get_template("email/sample.txt").render(t=t) == "Dec 1, 2026 16:22 EST"
        # Emails built in Python (the placeholders of email_templates) format the same way.
        assert datetimefmt(t) == "Dec 1, 2026 16:22 EST"


def test_zone_abbreviations_and_fallbacks(app):
    """Zones without a letter abbreviation read `UTC+04`; the default zone is UTC."""
    t = datetime(2026, 12, 1, 21, 22, tzinfo=UTC)
    assert datetimefmt(t, ZoneInfo("Asia/Dubai")) == "Dec 2, 2026 01:22 UTC+04"
    assert datetimefmt(t) == "Dec 1, 2026 21:22 UTC"
    assert not clock.is_zone("../../etc/passwd") and not clock.is_zone("")


def test_a_case_conversation_shows_business_time_and_a_whole_second_time_element(app, client):
    """Messages on a case read in the business's zone; `<time datetime>` has no microseconds."""
    from portal.services import cases

    settings.save({"time_zone": "America/Los_Angeles"})
    user = factories.portal_user()
    with time_machine.travel(datetime(2026, 12, 1, 21, 22, 5, 123456, tzinfo=UTC), tick=False):
        case = cases.create_case(user, "Leak", "The valve leaks.")
        login(client, user.email)
        page = client.get(f"/cases/{case.public_id}").text
    assert '<time class="muted" datetime="2026-12-01T21:22:05+00:00">' in page
    assert "Dec 1, 2026 13:22 PST" in page


def test_the_clock_and_the_settings_do_not_import_each_other_back():
    """The clock reads the settings; the settings check zone names without the clock."""
    from .test_ops import ROOT, _imports, _reaches

    graph = _imports(ROOT / "portal")
    assert not _reaches(graph, "portal.clock", "portal.clock")


def test_a_zone_this_system_does_not_know_falls_back_to_utc(app):
    """A stored name the zone database lacks (say, after a tzdata change) means UTC, not a 500."""
    Setting.create(key="time_zone", value=json.dumps("Mars/Olympus_Mons"))
    assert clock.business_zone() is UTC
    assert clock.business_today() == datetime.now(UTC).date()
