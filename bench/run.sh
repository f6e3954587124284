#!/usr/bin/env bash
# `make bench`: every benchmark; results go in docs/benchmarks.md by hand, with the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "## Uploads beside rustus"; ./bench/side-by-side.sh
echo; echo "## Uploads"; ./bench/uploads.sh "$@"
echo; echo "## Uploads on S3 (s3s-fs)"; ./bench/s3.sh
echo; echo "## Bulk delete"; ./bench/delete.sh
echo; echo "## Thumbnails beside vipsthumbnail"; ./bench/thumbs.sh
