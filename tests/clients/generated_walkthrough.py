"""The README's walk-through, driven by a client openapi-python-client generated from
mediabox's /openapi.json (tests/e2e/contract.rs generates it into PYTHONPATH as `client`).

usage: generated_walkthrough.py BASE_URL TOKEN PHOTO
Prints one JSON line: {"pages": N, "removed": bool, "delete_refused": STATUS}.
Any other surprise raises, so the test fails with the traceback.
"""
import hashlib
import io
import json
import sys

from client import AuthenticatedClient
from client.api.event import create as create_event
from client.api.gallery import add_to_gallery, gallery, remove_from_gallery
from client.api.rest import create_product, delete_media
from client.api.upload import append, complete, start
from client.models import (
    CatalogItemLd,
    EventDto,
    AddToGalleryRequest,
    CompleteRequest,
    CreateEventRequest,
    MediaDto,
    MediaPage,
    ProductBody,
    Problem,
    RemoveFromGalleryRequest,
    UploadDto,
)
from client.types import File

base, token, photo_path = sys.argv[1:4]
api = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)


def expect(response, status, model):
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, model), (type(response.parsed), response.content)
    return response.parsed


def upload(data, name):
    """Two chunks, as the README's curl steps 1-3 send them."""
    half = len(data) // 2
    first = start.sync_detailed(
        client=api,
        body=File(payload=io.BytesIO(data[:half]), file_name=name),
        filename=name,
        content_range=f"bytes 0-{half - 1}/{len(data)}",
    )
    up = expect(first, 200, UploadDto)
    assert up.offset == half, up
    rest = append.sync_detailed(
        up.upload_id,
        client=api,
        body=File(payload=io.BytesIO(data[half:])),
        content_range=f"bytes {half}-{len(data) - 1}/{len(data)}",
    )
    expect(rest, 200, UploadDto)
    done = complete.sync_detailed(
        client=api, body=CompleteRequest(upload_id=up.upload_id, sha256=hashlib.sha256(data).hexdigest())
    )
    return expect(done, 200, MediaDto)


photo = open(photo_path, "rb").read()
# Five photos (each its own bytes), one event, all five in its gallery.
media = [upload(photo + bytes([i]), f"photo-{i}.png") for i in range(5)]
event = expect(create_event.sync_detailed(client=api, body=CreateEventRequest(title="Summer party")), 201, EventDto)
for m in media:
    added = expect(add_to_gallery.sync_detailed(event.id, client=api, body=AddToGalleryRequest(media=m.id)), 200, MediaDto)
    assert added.id == m.id

# Page through the gallery, two at a time, following `next`'s cursor.
seen, pages, cursor = [], 0, None
while True:
    kwargs = {"page_size": 2} if cursor is None else {"page_size": 2, "cursor": cursor}
    page = expect(gallery.sync_detailed(event.id, client=api, **kwargs), 200, MediaPage)
    pages += 1
    seen += [item.id for item in page.results]
    if not page.next_:
        break
    cursor = page.next_.split("cursor=")[1].split("&")[0]
assert seen == [m.id for m in media], (seen, [m.id for m in media])

# Remove the first from the gallery: 204, and the gallery no longer lists it.
first = media[0]
gone = remove_from_gallery.sync_detailed(event.id, client=api, body=RemoveFromGalleryRequest(medias=[first.id]))
assert gone.status_code == 204, gone.content
left = expect(gallery.sync_detailed(event.id, client=api, page_size=50), 200, MediaPage)
removed = first.id not in [item.id for item in left.results] and left.count == 4

# A product pointing at the media: deleting the media is refused with 409, naming the product.
product = create_product.sync_detailed(
    client=api, body=ProductBody(name="Poster", medias=[f"/rest/api/medias/{first.uuid}"]), x_organization_id="acme"
)
product_iri = expect(product, 201, CatalogItemLd)["@id"]
assert product_iri.startswith("/rest/api/products/"), product_iri
refused = delete_media.sync_detailed(first.uuid, client=api, x_organization_id="acme")
problem = json.loads(refused.content)
assert isinstance(refused.parsed, Problem), refused.content
assert product_iri in problem.get("references", []), problem

print(json.dumps({"pages": pages, "removed": removed, "delete_refused": refused.status_code}))
