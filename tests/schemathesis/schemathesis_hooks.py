"""schemathesis hooks for mediabox: tus bodies (`application/offset+octet-stream`, SPEC 12)
are raw bytes, sent as schemathesis sends `application/octet-stream`."""
import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
