#!/usr/bin/env bash
# Architecture invariant: the domain depends on no adapter crate and no codec (image
# codecs live in mediabox-imaging, behind the MediaProcessor port), and the http adapter
# knows neither the database nor the blob store.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(cargo tree -p mediabox-domain -e normal --prefix none \
  | grep -oE '^(diesel[a-z_-]*|actix[a-z_-]*|jsonwebtoken|object_store|serde_json|validator|r2d2|reqwest|image|jpeg-decoder|zune-[a-z]+|png|gif|image-webp|tiff|mediabox-[a-z]+) ' \
  | grep -v '^mediabox-domain ' | sort -u || true)
if [ -n "$bad" ]; then
  echo "mediabox-domain depends on adapters or codecs: $bad" >&2; exit 1
fi
bad=$(cargo tree -p mediabox-http -e normal --prefix none | grep -oE '^mediabox-(persistence|storage) ' | sort -u || true)
if [ -n "$bad" ]; then
  echo "mediabox-http depends on $bad" >&2; exit 1
fi
echo "dependency rule holds: domain has no adapters and no codecs, http knows neither persistence nor storage"
