"""RFQ and quote attachments (issue 17): a customer's drawings on an RFQ, staff files on a
draft quote; checked and stored like a case's files (tests/test_attachments.py) and served
only to a login that may open the RFQ or the published quote (E2, G7)."""

import io

import pytest
from PIL import Image

from portal.models import Attachment, Quote, Rfq
from portal.services import attachments, quotes, settings

from . import factories, test_quotes
from .conftest import HX, login, staff_login
from .test_attachments import EXE, PDF, png_with_metadata
from .test_quotes import rfq_data, staff_quote_data

# The quotes tests' company and buyer (fixtures).
acme, buyer = test_quotes.acme, test_quotes.buyer


def send_rfq(client, *files, headers=None, **data):
    values = rfq_data(**data)
    values["files"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post(
        "/quotes/requests/new", data=values, content_type="multipart/form-data", headers=headers
    )


def _prepared(*files):
    from werkzeug.datastructures import FileStorage

    return attachments.prepare(
        [FileStorage(stream=io.BytesIO(content), filename=name) for name, content in files]
    )


def rfq_with_file(user, site=None):
    """An RFQ sent through the service with one drawing, and that file's key."""
    files = _prepared(("drawing.pdf", PDF))
    rfq = quotes.create_rfq(
        user, [quotes.Line(None, "Bracket", 1000)], site_id=site.id if site else None, files=files
    )
    return rfq, files[0].key


def quote_with_file(customer, status="published", site=None):
    """A quote with one staff file attached as `attachments.record` leaves it."""
    quote = factories.quote(customer, status=status, site=site)
    (item,) = _prepared(("terms.pdf", PDF))
    attachments.store([item])
    attachments.record(quotes.QUOTE_FILES, quote.id, [item], staff_user=factories.staff())
    return quote, item.key


def test_g7_drawings_on_an_rfq_are_stored_clean_and_served_to_the_customer_and_staff(
    app, client, buyer
):
    """G7: a photo and a PDF sent with an RFQ are recorded on it, the photo re-encoded
    without its metadata; the customer's RFQ page and the staff's list them; each is served
    with nosniff and Content-Disposition."""
    login(client, "pat@acme.example")
    response = send_rfq(client, ("site.png", png_with_metadata()), ("drawing.pdf", PDF))
    assert response.status_code == 303
    rfq = Rfq.get()
    photo, drawing = Attachment.select().order_by(Attachment.id)
    assert [(a.owner_kind, a.owner_id, a.portal_user_id) for a in (photo, drawing)] == [
        ("rfq", rfq.id, buyer.id),
        ("rfq", rfq.id, buyer.id),
    ]

    page = client.get(f"/quotes/requests/{rfq.public_id}").get_data(as_text=True)
    assert f'href="/attachments/{drawing.key}" download' in page
    assert f'src="/attachments/{photo.key}/thumb"' in page

    served = client.get(f"/attachments/{photo.key}")
    assert served.status_code == 200
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Disposition"] == "inline; filename=site.png"
    assert b"PhoneMaker" not in served.data and b"Secret Lane" not in served.data
    with Image.open(io.BytesIO(served.data)) as image:
        assert not image.getexif() and "Comment" not in image.info
    pdf = client.get(f"/attachments/{drawing.key}")
    assert pdf.data == PDF and pdf.headers["X-Content-Type-Options"] == "nosniff"
    assert pdf.headers["Content-Disposition"] == "attachment; filename=drawing.pdf"

    factories.staff(email="sam@example.com")
    staff = app.test_client()
    staff_login(staff, "sam@example.com")
    staff_page = staff.get(f"/staff/quotes/rfqs/{rfq.id}").get_data(as_text=True)
    assert f"/staff/attachments/{drawing.key}" in staff_page
    assert staff.get(f"/staff/attachments/{drawing.key}").data == PDF


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("program.exe", EXE, "program.exe cannot be attached: only images"),
        ("program.png", EXE, "program.png cannot be attached: only images"),
        ("drawing.png", PDF, "drawing.png is a PDF but its name says otherwise"),
        ("big.pdf", PDF + b"0" * (1024 * 1024), "big.pdf is larger than 1 MB."),
    ],
)
@pytest.mark.parametrize("headers", [None, HX], ids=["page", "htmx"])
def test_g7_a_refused_file_is_named_next_to_the_field_and_the_rfq_text_is_kept(
    client, buyer, name, content, message, headers
):
    """G7: over-size, wrong-type and renamed files: 422, the reason next to the file field,
    the typed notes and item kept (page or htmx fragment), no RFQ and no file."""
    settings.save({"attachment_max_mb": 1})
    login(client, "pat@acme.example")
    response = send_rfq(client, (name, content), headers=headers, notes="Typed notes, dock B")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and 'id="files-error"' in page
    assert "Typed notes, dock B" in page and 'value="Laser-cut bracket, 3 mm steel"' in page
    if headers:
        assert page.lstrip().startswith("<form")
    assert Rfq.select().count() == 0 and Attachment.select().count() == 0


def test_too_many_files_on_one_request(client, buyer):
    settings.save({"attachment_max_files": 1})
    login(client, "pat@acme.example")
    response = send_rfq(client, ("a.pdf", PDF), ("b.pdf", PDF))
    assert response.status_code == 422
    assert "Attach at most 1 files to one request." in response.get_data(as_text=True)
    assert Rfq.select().count() == 0


def test_e2_an_rfq_file_is_404_to_everyone_who_may_not_open_the_rfq(app, acme):
    """E2, G7: another company's login, a login limited to another site, a login of the
    same site without the quotes role get 404 (as an unknown key does); a guest is sent to
    sign in; the requester and a whole-account colleague get the file."""
    plant1, plant2 = factories.site(acme, name="Plant 1"), factories.site(acme, name="Plant 2")
    requester = factories.portal_user(acme, email="p1@acme.example", sites=[plant1])
    factories.portal_user(acme, email="boss@acme.example")
    factories.portal_user(acme, email="p2@acme.example", sites=[plant2])
    factories.portal_user(acme, email="clerk@acme.example", roles="invoices", sites=[plant1])
    factories.portal_user(factories.customer(), email="eve@other.example")
    _rfq, key = rfq_with_file(requester, site=plant1)

    for who, status in (
        ("p1@acme.example", 200),
        ("boss@acme.example", 200),
        ("p2@acme.example", 404),
        ("clerk@acme.example", 404),
        ("eve@other.example", 404),
    ):
        other = app.test_client()
        login(other, who)
        assert other.get(f"/attachments/{key}").status_code == status, who
    guest = app.test_client().get(f"/attachments/{key}")
    assert guest.status_code == 302 and "/login" in guest.headers["Location"]


def test_e2_a_whole_account_rfq_file_is_404_to_a_site_limited_login(app, acme, buyer):
    """An RFQ for the whole account is not a site's: a site-limited login cannot open it,
    nor its files."""
    plant = factories.site(acme)
    factories.portal_user(acme, email="p1@acme.example", sites=[plant])
    _rfq, key = rfq_with_file(buyer)
    other = app.test_client()
    login(other, "p1@acme.example")
    assert other.get(f"/attachments/{key}").status_code == 404


def test_e2_a_quote_file_is_404_while_the_quote_is_a_draft_and_to_other_companies(app, acme, buyer):
    """A draft's file is 404 to its own customer until the quote is published; a published
    quote's file is 404 to another company, a guest is sent to sign in."""
    draft, draft_key = quote_with_file(acme, status="draft")
    published, key = quote_with_file(acme)
    factories.portal_user(factories.customer(), email="eve@other.example")
    owner = app.test_client()
    login(owner, "pat@acme.example")
    assert owner.get(f"/attachments/{draft_key}").status_code == 404
    assert owner.get(f"/attachments/{key}").status_code == 200
    page = owner.get(f"/quotes/{published.public_id}").get_data(as_text=True)
    assert f"/attachments/{key}" in page
    eve = app.test_client()
    login(eve, "eve@other.example")
    assert eve.get(f"/attachments/{key}").status_code == 404
    guest = app.test_client().get(f"/attachments/{draft_key}")
    assert guest.status_code == 302 and "/login" in guest.headers["Location"]

    quotes.publish(Quote.get_by_id(draft.id), factories.staff())
    assert owner.get(f"/attachments/{draft_key}").status_code == 200


def test_staff_attach_files_to_a_draft_quote_the_customer_sees_once_published(
    app, client, acme, buyer
):
    """Staff add a file when creating the draft and another when editing it; the customer
    gets 404 for both until publishing, then the quote page lists and serves them. A refused
    file keeps what staff typed."""
    rfq = factories.rfq(acme, user=buyer, lines=[(None, "Custom jig", 1000)])
    factories.product(item_code="BRKT-200", description="Bracket", price_cents=1290)
    factories.staff(email="sam@example.com")
    staff_login(client, "sam@example.com")

    def post(url, *files, **extra):
        data = staff_quote_data(**extra)
        data["files"] = [(io.BytesIO(content), name) for name, content in files]
        return client.post(url, data=data, content_type="multipart/form-data")

    refused = post(f"/staff/quotes/rfqs/{rfq.id}/quote", ("terms.png", PDF))
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "terms.png is a PDF but its name says otherwise" in body
    assert "Lead time two weeks." in body and Quote.select().count() == 0

    assert post(f"/staff/quotes/rfqs/{rfq.id}/quote", ("terms.pdf", PDF)).status_code == 303
    quote = Quote.get()
    assert post(f"/staff/quotes/{quote.id}/edit", ("sheet.txt", b"a,b\n")).status_code == 303
    terms, sheet = Attachment.select().order_by(Attachment.id)
    assert {(a.owner_kind, a.owner_id) for a in (terms, sheet)} == {("quote", quote.id)}

    customer = app.test_client()
    login(customer, "pat@acme.example")
    assert customer.get(f"/attachments/{terms.key}").status_code == 404
    assert client.post(f"/staff/quotes/{quote.id}/publish").status_code == 303
    page = customer.get(f"/quotes/{quote.public_id}").get_data(as_text=True)
    assert f"/attachments/{terms.key}" in page and f"/attachments/{sheet.key}" in page
    served = customer.get(f"/attachments/{sheet.key}")
    assert served.status_code == 200 and served.data == b"a,b\n"
    assert served.headers["Content-Disposition"] == "attachment; filename=sheet.txt"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
