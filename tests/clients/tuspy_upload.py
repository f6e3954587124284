"""Uploads one file to mediabox with tuspy, using its default chunk size (one PATCH for the
whole file), then resumes a second upload that was cut off after its first chunk.

Usage: python tuspy_upload.py ENDPOINT TOKEN FILE NAME
Prints one JSON line: {"url": ..., "resumed_url": ..., "resumed_at": ...}.
"""
import json
import sys

from tusclient import client

endpoint, token, path, name = sys.argv[1:5]
tus = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})

# The default: one PATCH carries the whole file.
whole = tus.uploader(path, metadata={"filename": name})
whole.upload()

# Interrupted after one chunk, then resumed by a new uploader at the same URL (as an app
# that restarts does): it asks the server for the offset and sends the rest.
first = tus.uploader(path, chunk_size=256 * 1024, metadata={"filename": "resumed-" + name})
first.upload_chunk()
again = tus.uploader(path, url=first.url, chunk_size=1 << 30)
resumed_at = again.get_offset()
again.upload()
print(json.dumps({"url": whole.url, "resumed_url": again.url, "resumed_at": resumed_at}))
