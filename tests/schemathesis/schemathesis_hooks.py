"""schemathesis hooks for mediabox (issue 24).

- tus bodies (`application/offset+octet-stream`, SPEC 12) are raw bytes, sent as
  schemathesis sends `application/octet-stream`.
- Three findings are false, and only these exact findings are dropped (a hook, not a config entry: schemathesis 4.32 lets a check named
  on the command line, as `--checks all` names every check, override a per-operation
  `enabled = false` of the config file):
  - `use_after_free` after `DELETE /api/v2/event/{id}/gallery/`: that DELETE removes the
    media named in its body from the gallery (SPEC 4, seed 000); the gallery itself stays,
    so reading it afterwards answers 200 with what is left.
  - `ensure_resource_availability` for `POST /api/v2/event/{id}/gallery/` answering 404
    "no such media": the 404 is about the media named in the body (SPEC 4: "a media that
    is not in the organization is 404"), not about the event just created, whose id is
    the only thing the link supplies.
  - `positive_data_acceptance` for a case that schemathesis calls positive while one of
    its own components (headers, say) was generated in negative mode: seen in the coverage
    phase of 4.32.5, which built a "Valid string" case for `Upload-Offset` on a template
    whose `Upload-Checksum` was `0`, a value the documented pattern refuses (the 400
    names `Upload-Checksum`). Such a case is not valid data, so refusing it is right.
"""
import json
import re

import schemathesis
from schemathesis.openapi.checks import EnsureResourceAvailability, RejectedPositiveData, UseAfterFree

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

GALLERY = re.compile(r"^/api/v2/event/[^/]+/gallery/$")

# What a Rust debug dump or validator's default message looks like in an error body:
# `Validation error:`, `Number(200)`, `String("")`, `Some(..)`, `Err(..)`, `{ field: .. }`.
DEBUG_FORMATTING = re.compile(
    r'Validation error:|\b(Number|String|Some|None|Ok|Err|Bool|Array|Object)\(|\b[A-Z][A-Za-z]+ \{ [a-z_]+: '
)


@schemathesis.check
def error_bodies_speak_plainly(ctx, response, case):
    """An error body is problem+json whose words are for a person: no validator default
    message and no Rust debug formatting (issue 24)."""
    if response.status_code < 400:
        return None
    text = response.content.decode("utf-8", "replace") if response.content else ""
    found = DEBUG_FORMATTING.search(text)
    if found:
        raise AssertionError(f"error body shows internals ({found.group(0)!r}): {text[:300]}")
    if text:
        content_type = response.headers.get("content-type", [""])
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/problem+json"), f"error body is {content_type}, not problem+json"
    return None


def _problem_detail(response):
    try:
        return json.loads(response.content).get("detail")
    except (ValueError, AttributeError):
        return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if isinstance(failure, UseAfterFree):
        freed = failure.free.split(" ", 1)
        used = failure.usage.split(" ", 1)
        if freed[0] == "DELETE" and used[0] == "GET" and freed[1] == used[1] and GALLERY.match(freed[1]):
            return False
    if isinstance(failure, EnsureResourceAvailability):
        if (
            failure.not_available_with == "POST /api/v2/event/{id}/gallery/"
            and response.status_code == 404
            and _problem_detail(response) == "no such media"
        ):
            return False
    if isinstance(failure, RejectedPositiveData) and case.meta is not None:
        if any(info.mode.is_negative for info in case.meta.components.values()):
            return False
    return True
