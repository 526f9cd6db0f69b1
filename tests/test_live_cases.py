"""Live case threads: the open page polls a fragment that answers 304 when nothing changed."""

import pytest

from portal.models import Case
from portal.services import cases

from . import factories
from .conftest import HX, login, staff_login


@pytest.fixture
def world(app):
    buyer = factories.portal_user(factories.customer(), email="pat@acme.example")
    factories.staff("agent@office.example")
    customer = app.test_client()
    login(customer, "pat@acme.example")
    customer.post("/cases/new", data={"subject": "Leak", "body": "Water under the unit."})
    staff = app.test_client()
    staff_login(staff, "agent@office.example")
    return buyer, Case.get(), customer, staff


def poll(client, url, etag=None):
    headers = dict(HX)
    if etag:
        headers["If-None-Match"] = etag
    return client.get(url, headers=headers)


def test_customer_poll_answers_304_until_the_office_replies(world):
    """Nothing new: 304 with no body (cheap for many tabs); a staff reply or a status change
    gives 200 with the new message and a new tag; without JavaScript the page has a link
    that reloads it."""
    _, case, customer, staff = world
    page = customer.get(f"/cases/{case.public_id}").get_data(as_text=True)
    live = f"/cases/{case.public_id}/live"
    assert f'hx-get="{live}" hx-trigger="every 5s"' in page
    assert f'<a href="/cases/{case.public_id}">Check for new messages</a>' in page

    first = poll(customer, live)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert f'data-etag="&quot;{etag.strip(chr(34))}&quot;"' in page
    assert first.headers["Cache-Control"] == "no-store"
    body = first.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="live-thread"') and "<html" not in body

    same = poll(customer, live, etag)
    assert same.status_code == 304 and same.data == b""
    assert same.headers["ETag"] == etag

    staff.post(
        f"/staff/cases/{case.id}/reply",
        data={"body": "A plumber comes Monday.", "status": "waiting"},
    )
    changed = poll(customer, live, etag)
    assert changed.status_code == 200
    assert "A plumber comes Monday." in changed.get_data(as_text=True)
    assert "Waiting for you" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag
    assert poll(customer, live, changed.headers["ETag"]).status_code == 304


def test_staff_poll_sees_the_customers_new_message(world):
    """The staff page's poll: 304, then 200 once the customer writes."""
    _, case, customer, staff = world
    live = f"/staff/cases/{case.id}/live"
    assert f'hx-get="{live}"' in staff.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    etag = poll(staff, live).headers["ETag"]
    assert poll(staff, live, etag).status_code == 304
    customer.post(f"/cases/{case.public_id}/reply", data={"body": "It got worse."})
    changed = poll(staff, live, etag)
    assert changed.status_code == 200 and "It got worse." in changed.get_data(as_text=True)


def test_an_internal_note_changes_the_staff_tag_and_never_shows_to_the_customer(world):
    """A note is staff-only: the customer's poll may answer 200 but never shows it."""
    _, case, customer, staff = world
    live = f"/cases/{case.public_id}/live"
    etag = poll(customer, live).headers["ETag"]
    staff_etag = poll(staff, f"/staff/cases/{case.id}/live").headers["ETag"]
    staff.post(
        f"/staff/cases/{case.id}/reply",
        data={"body": "Customer is grumpy", "internal": "y", "status": case.status},
    )
    assert poll(staff, f"/staff/cases/{case.id}/live", staff_etag).status_code == 200
    answer = poll(customer, live, etag)
    assert "Customer is grumpy" not in answer.get_data(as_text=True)


def test_the_tag_counts_messages_written_in_the_same_instant(world):
    """Two messages with one `updated_at` still change the tag (the count is in it)."""
    buyer, case, _, _ = world
    before = cases.thread_version(case)
    cases.reply_as_customer(case, buyer, "again")
    case = Case.get_by_id(case.id)
    Case.update(updated_at=case.updated_at).execute()
    assert cases.thread_version(case) != before


def test_another_companys_poll_is_404(app, world):
    """E2: the live fragment is scoped like the page."""
    _, case, _, _ = world
    factories.portal_user(factories.customer(), email="eve@other.example")
    eve = app.test_client()
    login(eve, "eve@other.example")
    assert poll(eve, f"/cases/{case.public_id}/live").status_code == 404
