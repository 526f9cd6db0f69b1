"""Case attachments: checked by content, images re-encoded without metadata, stored in the
instance folder or S3-compatible storage, served only to whoever may see the case (G7)."""

import io
import threading

import pytest
from PIL import Image

from portal.models import Attachment, Case, CaseMessage
from portal.services import attachments, cases, settings, storage

from . import factories
from .conftest import HX, free_port, login, staff_login

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(200)


def png_with_metadata(size=(640, 480)) -> bytes:
    """A PNG carrying EXIF with a GPS position and a text comment (what a phone adds)."""
    from PIL import PngImagePlugin

    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}  # GPS info
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address 12 Secret Lane")
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif, pnginfo=info)
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    image = Image.new("RGB", (300, 200), (10, 120, 30))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


@pytest.fixture
def acme():
    return factories.customer(name="Acme Manufacturing")


@pytest.fixture
def buyer(acme):
    return factories.portal_user(acme, email="pat@acme.example")


def open_case(client, *files, **data):
    values = {"subject": "Damaged pallet", "body": "Two boxes arrived crushed."}
    values.update(data)
    values["files"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post("/cases/new", data=values, content_type="multipart/form-data")


def test_photo_on_a_new_case_is_stored_without_metadata_and_served_to_the_customer(client, buyer):
    """G7: a photo is stored re-encoded (no EXIF, no GPS, no comment) under a random name
    outside the web root, with a thumbnail; served with nosniff and Content-Disposition."""
    login(client, "pat@acme.example")
    response = open_case(client, ("pallet.png", png_with_metadata()), ("note.txt", b"a,b\n1,2\n"))
    assert response.status_code == 303
    case = Case.get()
    message = CaseMessage.get(CaseMessage.case == case)
    rows = list(Attachment.select().order_by(Attachment.id))
    assert [(a.owner_kind, a.owner_id, a.filename) for a in rows] == [
        ("case_message", message.id, "pallet.png"),
        ("case_message", message.id, "note.txt"),
    ]
    photo = rows[0]
    assert (photo.width, photo.height) == (640, 480) and photo.thumb_key
    stored = client.application.instance_path + f"/attachments/{photo.key[:2]}/{photo.key}"
    with open(stored, "rb") as fh:
        data = fh.read()
    assert b"PhoneMaker" not in data and b"Secret Lane" not in data
    with Image.open(io.BytesIO(data)) as image:
        assert not image.getexif() and "Comment" not in image.info

    page = client.get(f"/cases/{case.public_id}").get_data(as_text=True)
    assert f'src="/attachments/{photo.key}/thumb"' in page
    assert f'href="/attachments/{rows[1].key}" download' in page

    served = client.get(f"/attachments/{photo.key}")
    assert served.status_code == 200
    assert served.data == data
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Disposition"] == "inline; filename=pallet.png"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    text = client.get(f"/attachments/{rows[1].key}")
    assert text.headers["Content-Disposition"] == "attachment; filename=note.txt"
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    thumb = client.get(f"/attachments/{photo.key}/thumb")
    with Image.open(io.BytesIO(thumb.data)) as image:
        assert max(image.size) <= 320


def test_jpeg_exif_and_gps_are_stripped(app):
    """G7: a JPEG's EXIF (camera, GPS) does not survive; the pixels do."""
    upload = _upload("site.jpg", jpeg_with_exif())
    (item,) = attachments.prepare([upload])
    assert b"PhoneMaker" not in item.data
    with Image.open(io.BytesIO(item.data)) as image:
        assert image.format == "JPEG" and image.size == (300, 200)
        assert not image.getexif()


def _upload(name, content):
    from werkzeug.datastructures import FileStorage

    return FileStorage(stream=io.BytesIO(content), filename=name)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("program.png", EXE, "program.png cannot be attached: only images"),
        ("invoice.png", PDF, "invoice.png is a PDF but its name says otherwise"),
        ("photo.pdf", png_with_metadata((20, 20)), "photo.pdf is a PNG image but its name"),
        ("script.html", b"<script>alert(1)</script>", "script.html is a text file but its name"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "could not be read as an image"),
        ("big.pdf", PDF + b"0" * (1024 * 1024), "big.pdf is larger than 1 MB."),
    ],
)
def test_refused_file_gives_a_message_next_to_the_field_keeps_the_text_and_writes_nothing(
    client, buyer, name, content, message
):
    """G7: wrong type, a renamed file, a damaged image or an over-size file: 422, the reason
    next to the file field, the typed subject and text kept, no case and no file."""
    settings.save({"attachment_max_mb": 1})
    login(client, "pat@acme.example")
    response = open_case(client, (name, content), subject="Crushed boxes", body="Typed text")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page
    assert 'id="files-error"' in page
    assert 'value="Crushed boxes"' in page and "Typed text" in page
    assert Case.select().count() == 0 and Attachment.select().count() == 0


def test_too_many_files_are_refused(client, buyer):
    """The count limit from settings holds for one message."""
    settings.save({"attachment_max_files": 2})
    login(client, "pat@acme.example")
    files = [(f"n{i}.txt", b"note") for i in range(3)]
    response = open_case(client, *files)
    assert response.status_code == 422
    assert "Attach at most 2 files to one message." in response.get_data(as_text=True)
    assert Case.select().count() == 0


def test_htmx_refusal_answers_the_form_fragment(client, buyer):
    """With htmx, the refused reply swaps only the reply form, keeping what was typed."""
    login(client, "pat@acme.example")
    open_case(client)
    case = Case.get()
    response = client.post(
        f"/cases/{case.public_id}/reply",
        data={"body": "Here is the photo", "files": [(io.BytesIO(EXE), "x.png")]},
        content_type="multipart/form-data",
        headers=HX,
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith("<form") and "Here is the photo" in body
    assert "x.png cannot be attached" in body
    assert CaseMessage.select().count() == 1


def test_staff_reply_files_and_internal_note_files(client, app, buyer):
    """Staff attach to an answer (the customer sees it) and to an internal note (the customer
    gets 404 for that file: the note is not theirs to see)."""
    login(client, "pat@acme.example")
    open_case(client)
    case = Case.get()
    staff = factories.staff("agent@office.example")
    staff_client = app.test_client()
    staff_login(staff_client, "agent@office.example")
    for internal, name in ((False, "drawing.pdf"), (True, "margin.txt")):
        data = {
            "body": "See attached",
            "status": "waiting",
            "files": [(io.BytesIO(PDF if name.endswith("pdf") else b"note"), name)],
        }
        if internal:
            data["internal"] = "y"
        response = staff_client.post(
            f"/staff/cases/{case.id}/reply", data=data, content_type="multipart/form-data"
        )
        assert response.status_code == 303
    answer, note = Attachment.select().order_by(Attachment.id)
    assert answer.staff_user_id == staff.id
    staff_page = staff_client.get(f"/staff/cases/{case.id}").get_data(as_text=True)
    assert f"/staff/attachments/{answer.key}" in staff_page
    assert f"/staff/attachments/{note.key}" in staff_page
    assert staff_client.get(f"/staff/attachments/{note.key}").status_code == 200
    assert client.get(f"/attachments/{answer.key}").status_code == 200
    assert client.get(f"/attachments/{note.key}").status_code == 404
    page = client.get(f"/cases/{case.public_id}").get_data(as_text=True)
    assert answer.key in page and note.key not in page


def test_another_company_a_guest_and_an_out_of_site_login_get_404(app, acme):
    """E2, G7: the attachment URL of a case answers 404 to another company's login and to a
    login limited to another site (as an unknown key does); a guest is sent to sign in and
    a staff session on the customer URL gets 403, whatever the key; the login that may open
    the case gets the file."""
    plant1, plant2 = factories.site(acme, name="Plant 1"), factories.site(acme, name="Plant 2")
    factories.portal_user(acme, email="p1@acme.example", sites=[plant1])
    factories.portal_user(acme, email="p2@acme.example", sites=[plant2])
    factories.portal_user(factories.customer(), email="eve@other.example")
    factories.staff("agent@office.example")
    owner = app.test_client()
    login(owner, "p1@acme.example")
    assert open_case(owner, ("pallet.png", png_with_metadata((40, 40)))).status_code == 303
    key = Attachment.get().key
    assert owner.get(f"/attachments/{key}").status_code == 200

    for who in ("eve@other.example", "p2@acme.example"):
        other = app.test_client()
        login(other, who)
        for url in (f"/attachments/{key}", f"/attachments/{key}/thumb"):
            assert other.get(url).status_code == 404, (who, url)
    guest = app.test_client()
    for url in (f"/attachments/{key}", "/attachments/" + "B" * 32):
        answer = guest.get(url)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"]
    staff = app.test_client()
    staff_login(staff, "agent@office.example")
    assert staff.get(f"/attachments/{key}").status_code == 403
    assert app.test_client().get(f"/staff/attachments/{key}").status_code in (302, 303, 401)
    assert owner.get("/attachments/not-a-key").status_code == 404
    assert owner.get("/attachments/" + "A" * 32).status_code == 404


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3-compatible server on loopback (no internet), for the whole module."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_s3_compatible_storage_round_trip(build_app, s3_server):
    """With PORTAL_ATTACHMENTS_S3_*, the bytes go to the bucket (none to the instance
    folder) and come back from it for the customer; a second host reads the same file."""
    import boto3

    config = {
        "ATTACHMENTS_S3_BUCKET": "doorstep-test",
        "ATTACHMENTS_S3_ENDPOINT_URL": s3_server,
        "ATTACHMENTS_S3_ACCESS_KEY": "testing",
        "ATTACHMENTS_S3_SECRET_KEY": "testing",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="doorstep-test")
    app = build_app(**config)
    factories.portal_user(factories.customer(), email="pat@acme.example")
    client = app.test_client()
    login(client, "pat@acme.example")
    assert open_case(client, ("pallet.png", png_with_metadata((50, 40)))).status_code == 303
    row = Attachment.get()
    stored = s3.get_object(Bucket="doorstep-test", Key=f"attachments/{row.key}")["Body"].read()
    assert stored.startswith(b"\x89PNG") and b"PhoneMaker" not in stored
    thumb = s3.get_object(Bucket="doorstep-test", Key=f"attachments/{row.thumb_key}")
    assert thumb["ContentType"] == "image/png"
    import os

    assert not os.path.exists(os.path.join(app.instance_path, "attachments"))
    served = client.get(f"/attachments/{row.key}")
    assert served.status_code == 200 and served.data == stored
    with app.app_context():
        assert storage.get(storage.new_key()) is None


def test_concurrent_writes_of_one_key_leave_a_whole_file(app):
    """Local storage writes a private file and renames it: a reader sees the old or the new
    bytes, never a mix."""
    errors.clear()
    for _round in range(5):
        key = storage.new_key()
        payloads = [bytes([i]) * 500_000 for i in range(1, 9)]
        threads = [threading.Thread(target=_put_in_context, args=(app, key, p)) for p in payloads]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert storage.get(key) in payloads


errors = []


def _put_in_context(app, key, data):
    with app.app_context():
        try:
            storage.put(key, data, "application/octet-stream")
        except Exception as error:  # noqa: BLE001 - the test lists what any writer hit
            errors.append(error)


def test_service_keeps_owners_generic(app, buyer):
    """Any owner kind can carry files (RFQs and quotes would register theirs); an owner
    kind nobody registered is never served to customers."""
    (item,) = attachments.prepare([_upload("spec.pdf", PDF)])
    attachments.store([item])
    (row,) = attachments.record("rfq_test", 7, [item], portal_user=buyer)
    assert attachments.for_owners("rfq_test", [7]) == {7: [row]}
    assert attachments.for_customer(buyer, row.key) is None
    assert attachments.content(row) == (PDF, "application/pdf")
    assert cases.MESSAGE == "case_message"
