//! Load client for `make bench`: uploads through the chunked API of a running server.
//!
//! `upload-bench large URL TOKEN BYTES CHUNK` sends one file of BYTES in CHUNK-sized
//! chunks (generated on the fly, never held whole) and completes it.
//! `upload-bench small URL TOKEN COUNT BYTES CLIENTS` uploads COUNT files of BYTES each,
//! one chunk each, from CLIENTS concurrent clients.
//! `upload-bench delete URL TOKEN COUNT CLIENTS` uploads COUNT small files, then deletes
//! them all with one `DELETE /api/v1/images` and times that request.
//! `upload-bench s3-put ENDPOINT BUCKET BYTES CHUNK IN_FLIGHT` is the S3 ceiling: the
//! same bytes put straight into the bucket as one `object_store` multipart upload of
//! CHUNK-sized parts, IN_FLIGHT parts at a time (the test server's credentials).
//! `upload-bench s3-small ENDPOINT BUCKET COUNT BYTES CLIENTS` is the small-file ceiling:
//! COUNT objects of BYTES put straight into the bucket, one request each, CLIENTS at once.
//! `upload-bench tus-large URL BYTES CHUNK` and `tus-small URL COUNT BYTES CLIENTS` do the
//! same work against a tus server (rustus, or mediabox's `/api/v2/media/tus/` with the
//! bearer token in `TUS_TOKEN`): creation (`POST URL`), then `PATCH`es; a CHUNK of BYTES
//! or more is one PATCH streaming the whole file. `tus-small-cwu` sends each file in its
//! creation request (creation-with-upload). `tus-cut URL BYTES CUT` starts one PATCH of
//! BYTES, breaks the connection after CUT bytes, and prints how many the server kept.
//! `upload-bench gallery-seed URL TOKEN COUNT CLIENTS` makes an event and uploads COUNT
//! distinct small photos into its gallery (tus creation-with-upload with the event in the
//! metadata, CLIENTS at once); prints the event's id.
//! `upload-bench make-jpeg PATH WIDTH HEIGHT` writes a photo-like JPEG (gradients and
//! grain, quality 90) for the thumbnail benchmark.
//! `upload-bench thumbs URL TOKEN PATH SEQUENTIAL CONCURRENT` uploads SEQUENTIAL +
//! CONCURRENT distinct copies of the JPEG at PATH (a byte after its end tells them apart),
//! then asks for the first thumbnail of SEQUENTIAL of them one after another (each
//! request's milliseconds) and of the other CONCURRENT all at once (thumbnails/s).
//! `upload-bench poster URL TOKEN PATH RUNS` uploads the video at PATH RUNS times (each
//! deleted before the next, so that each is a new blob), and for each waits for its
//! duration to be known (the thumbnail is made in the background as it completes), then
//! times the first request of its `preview` poster.
//! Prints one line of JSON with the timing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use futures_util::StreamExt;
use serde_json::json;

async fn send_chunk(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    id: Option<&str>,
    start: u64,
    data: impl Into<bytes::Bytes>,
    total: u64,
) -> String {
    let data: bytes::Bytes = data.into();
    let end = start + data.len() as u64 - 1;
    let path = match id {
        None => format!("{url}/api/v2/media/chunk_upload/?filename=bench.bin"),
        Some(id) => format!("{url}/api/v2/media/chunk_upload/{id}/"),
    };
    let r = http
        .put(path)
        .bearer_auth(token)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("bytes {start}-{end}/{total}"))
        .body(data)
        .send()
        .await
        .expect("send chunk");
    assert!(r.status().is_success(), "chunk: {}", r.status());
    let v: serde_json::Value = r.json().await.expect("json");
    v["upload_id"].as_str().expect("upload_id").to_owned()
}

async fn complete(http: &reqwest::Client, url: &str, token: &str, id: &str) -> serde_json::Value {
    let r = http
        .post(format!("{url}/api/v2/media/chunk_upload_complete/"))
        .bearer_auth(token)
        .json(&json!({"upload_id": id}))
        .send()
        .await
        .expect("complete");
    assert!(r.status().is_success(), "complete: {}", r.status());
    r.json().await.expect("media")
}

/// The middle of `v` once sorted (the upper one of two).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Bytes distinct per file and chunk, so that no two files share a blob. Eight bytes per
/// xorshift step: the client must not be what a run measures.
fn chunk_bytes(seed: u64, index: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_add(1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A tus request, with `TUS_TOKEN` as bearer token when it is set.
fn tus_req(http: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    let r = http.request(method, url).header("Tus-Resumable", "1.0.0");
    match std::env::var("TUS_TOKEN") {
        Ok(t) if !t.is_empty() => r.bearer_auth(t),
        _ => r,
    }
}

/// Creates a tus upload of `len` bytes, with `body` as its first bytes when given
/// (creation-with-upload); answers its URL.
async fn tus_create(http: &reqwest::Client, url: &str, len: u64, body: Option<bytes::Bytes>) -> String {
    let mut req = tus_req(http, reqwest::Method::POST, url).header("Upload-Length", len.to_string());
    if let Some(b) = body {
        req = req.header("Content-Type", "application/offset+octet-stream").body(b);
    }
    let r = req.send().await.expect("tus create");
    assert!(r.status().is_success(), "tus create: {}", r.status());
    let loc = r.headers()["location"].to_str().expect("location").to_owned();
    if loc.starts_with("http") {
        loc
    } else {
        let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
        format!("{base}{loc}")
    }
}

fn tus_patch_req(http: &reqwest::Client, upload: &str, offset: u64, len: u64) -> reqwest::RequestBuilder {
    tus_req(http, reqwest::Method::PATCH, upload)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .header("Content-Length", len.to_string())
}

async fn tus_patch(http: &reqwest::Client, upload: &str, offset: u64, data: impl Into<bytes::Bytes>) {
    let data: bytes::Bytes = data.into();
    let r = tus_patch_req(http, upload, offset, data.len() as u64).body(data).send().await.expect("tus patch");
    assert!(r.status().is_success(), "tus patch: {}", r.status());
}

/// One PATCH whose body streams every chunk of `chunks` (never the whole file in memory).
async fn tus_patch_stream(http: &reqwest::Client, upload: &str, bytes: u64, chunks: Chunks) {
    let stream = futures_util::stream::unfold(chunks, |mut c| async move {
        c.next().map(|(_, data)| (Ok::<_, std::io::Error>(data), c))
    });
    let r =
        tus_patch_req(http, upload, 0, bytes).body(reqwest::Body::wrap_stream(stream)).send().await.expect("tus patch");
    assert!(r.status().is_success(), "tus patch: {}", r.status());
}

/// One file's chunks in order, cut from one pattern made before the clock starts: each
/// chunk is the pattern from its own offset (so no two chunks are the same bytes), shared,
/// not copied. Making 16 MiB per chunk while the one before streams cost the client a
/// fresh mapping and the generator's CPU on every chunk, taken from the same two cores as
/// the server it measures.
struct Chunks {
    pattern: bytes::Bytes,
    bytes: u64,
    chunk: u64,
    start: u64,
    index: u64,
}

/// Offsets a chunk's bytes may start at within the pattern (in steps of 8 bytes).
const SHIFTS: usize = 8192;

impl Chunks {
    fn new(seed: u64, bytes: u64, chunk: u64) -> Self {
        let len = usize::try_from(chunk.min(bytes)).unwrap() + SHIFTS * 8;
        Self { pattern: chunk_bytes(seed, 0, len).into(), bytes, chunk, start: 0, index: 0 }
    }

    /// The next chunk and where it starts.
    fn next(&mut self) -> Option<(u64, bytes::Bytes)> {
        let len = usize::try_from(self.chunk.min(self.bytes - self.start)).unwrap();
        if len == 0 {
            return None;
        }
        let from = usize::try_from(self.index).unwrap() % SHIFTS * 8;
        let (start, data) = (self.start, self.pattern.slice(from..from + len));
        self.start += len as u64;
        self.index += 1;
        Some((start, data))
    }
}

/// `count` distinct files of `size` bytes, sent by `send` from `clients` at once.
async fn each_file<F, Fut>(seed: u64, count: u64, size: usize, clients: usize, send: F)
where
    F: Fn(u64, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let files: Vec<(u64, Vec<u8>)> = (0..count).map(|i| (i, chunk_bytes(seed, i, size))).collect();
    futures_util::stream::iter(files).for_each_concurrent(clients, |(i, data)| send(i, data)).await;
}

/// Prints the run's one line: its time and its rate (`MB/s` of `bytes`, or `files/s`).
fn report(started: Instant, bytes: Option<u64>, files: Option<u64>) {
    let secs = started.elapsed().as_secs_f64();
    let mut line = json!({"seconds": (secs * 100.0).round() / 100.0});
    if let Some(b) = bytes {
        line["MB/s"] = json!((b as f64 / secs / 1e6).round());
    }
    if let Some(n) = files {
        line["files/s"] = json!((n as f64 / secs).round());
    }
    println!("{line}");
}

/// A client of the benchmark's s3s-fs, with the test server's credentials.
fn s3_client(endpoint: &str, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(mediabox_storage::testing::KEY)
        .with_secret_access_key(mediabox_storage::testing::SECRET)
        // `S3_UNSIGNED=1`: no SHA-256 of the payload on either side (as mediabox's
        // whole-file PUT), the faster ceiling.
        .with_unsigned_payload(std::env::var("S3_UNSIGNED").is_ok_and(|v| v == "1"))
        .build()
        .expect("s3 client")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let (url, token) = (args[2].clone(), args[3].clone());
    let seed = u64::from(std::process::id())
        ^ u64::from(std::time::SystemTime::now().elapsed().map_or(0, |d| d.subsec_nanos()));
    let num = |i: usize| -> u64 { args[i].parse().unwrap() };
    match args[1].as_str() {
        "large" => {
            let (bytes, chunk) = (num(4), num(5));
            let mut chunks = Chunks::new(seed, bytes, chunk);
            let started = Instant::now();
            let mut id: Option<String> = None;
            while let Some((start, data)) = chunks.next() {
                id = Some(send_chunk(&http, &url, &token, id.as_deref(), start, data, bytes).await);
            }
            complete(&http, &url, &token, id.as_deref().unwrap()).await;
            report(started, Some(bytes), None);
        }
        "small" => {
            let (count, size, clients) = (num(4), usize::try_from(num(5)).unwrap(), usize::try_from(num(6)).unwrap());
            let started = Instant::now();
            each_file(seed, count, size, clients, |_, data| {
                let (http, url, token) = (&http, &url, &token);
                async move {
                    let total = data.len() as u64;
                    let id = send_chunk(http, url, token, None, 0, data, total).await;
                    complete(http, url, token, &id).await;
                }
            })
            .await;
            report(started, None, Some(count));
        }
        "delete" => {
            let (count, clients) = (num(4), usize::try_from(num(5)).unwrap());
            let uuids: Vec<String> = futures_util::stream::iter(0..count)
                .map(|i| {
                    let (http, url, token) = (&http, &url, &token);
                    async move {
                        let data = chunk_bytes(seed, i, 256);
                        let id = send_chunk(http, url, token, None, 0, data, 256).await;
                        complete(http, url, token, &id).await["uuid"].as_str().expect("uuid").to_owned()
                    }
                })
                .buffer_unordered(clients)
                .collect()
                .await;
            let started = Instant::now();
            let r = http
                .delete(format!("{url}/api/v1/images"))
                .bearer_auth(&token)
                .json(&json!({"image_ids": uuids}))
                .send()
                .await
                .expect("delete");
            assert!(r.status().is_success(), "delete: {}", r.status());
            let deleted: Vec<String> = r.json().await.expect("json");
            let secs = started.elapsed().as_secs_f64();
            assert_eq!(deleted.len() as u64, count, "every id deleted");
            println!(
                "{}",
                json!({"ids": count, "ms": (secs * 10000.0).round() / 10.0, "us_per_id": (secs * 1e6 / count as f64).round()})
            );
        }
        "tus-large" => {
            let (bytes, chunk) = (num(3), num(4));
            let started = Instant::now();
            let upload = tus_create(&http, &url, bytes, None).await;
            if chunk >= bytes {
                tus_patch_stream(&http, &upload, bytes, Chunks::new(seed, bytes, 16 << 20)).await;
            } else {
                let mut chunks = Chunks::new(seed, bytes, chunk);
                while let Some((start, data)) = chunks.next() {
                    tus_patch(&http, &upload, start, data).await;
                }
            }
            report(started, Some(bytes), None);
        }
        "tus-small" | "tus-small-cwu" => {
            let with_upload = args[1] == "tus-small-cwu";
            let (count, size, clients) = (num(3), usize::try_from(num(4)).unwrap(), usize::try_from(num(5)).unwrap());
            let started = Instant::now();
            each_file(seed, count, size, clients, |_, data| {
                let (http, url) = (&http, &url);
                async move {
                    if with_upload {
                        tus_create(http, url, data.len() as u64, Some(data.into())).await;
                    } else {
                        let upload = tus_create(http, url, data.len() as u64, None).await;
                        tus_patch(http, &upload, 0, data).await;
                    }
                }
            })
            .await;
            report(started, None, Some(count));
        }
        "tus-cut" => {
            let (bytes, cut) = (num(3), num(4));
            let upload = tus_create(&http, &url, bytes, None).await;
            // The body breaks off after `cut` bytes: the connection goes down mid-PATCH.
            let mut chunks = Chunks::new(seed, cut, 1 << 20);
            let stream = futures_util::stream::poll_fn(move |_| {
                std::task::Poll::Ready(Some(match chunks.next() {
                    Some((_, data)) => Ok(data),
                    None => Err(std::io::Error::other("cut")),
                }))
            });
            let sent = tus_patch_req(&http, &upload, 0, bytes).body(reqwest::Body::wrap_stream(stream)).send().await;
            assert!(sent.is_err(), "the PATCH was cut");
            // What HEAD tells once the server is done with the broken PATCH: an empty
            // PATCH at that offset is refused (423) until then.
            let kept = loop {
                let r = tus_req(&http, reqwest::Method::HEAD, &upload).send().await.expect("head");
                let at: u64 = r.headers()["upload-offset"].to_str().unwrap().parse().unwrap();
                let r = tus_patch_req(&http, &upload, at, 0).send().await.expect("empty patch");
                if r.status().is_success() {
                    break at;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            };
            println!("{}", json!({"sent": cut, "kept": kept}));
        }
        "s3-small" => {
            use object_store::ObjectStoreExt;
            let store = s3_client(&args[2], &args[3]);
            let (count, size, clients) = (num(4), usize::try_from(num(5)).unwrap(), usize::try_from(num(6)).unwrap());
            let started = Instant::now();
            each_file(seed, count, size, clients, |i, data| {
                let store = &store;
                async move {
                    let path = object_store::path::Path::from(format!("ceiling/{seed}/{i}"));
                    store.put(&path, data.into()).await.expect("put");
                }
            })
            .await;
            report(started, None, Some(count));
        }
        "s3-put" => {
            use object_store::ObjectStoreExt;
            let store = s3_client(&args[2], &args[3]);
            let (bytes, chunk, in_flight) = (num(4), num(5), usize::try_from(num(6)).unwrap());
            let path = object_store::path::Path::from(format!("ceiling/{seed}"));
            let mut chunks = Chunks::new(seed, bytes, chunk);
            let started = Instant::now();
            let upload = store.put_multipart(&path).await.expect("create multipart");
            let mut w = object_store::WriteMultipart::new_with_chunk_size(upload, usize::try_from(chunk).unwrap());
            while let Some((_, data)) = chunks.next() {
                w.wait_for_capacity(in_flight).await.expect("part");
                w.write(&data);
            }
            w.finish().await.expect("complete multipart");
            report(started, Some(bytes), None);
            store.delete(&path).await.expect("delete");
        }
        "gallery-seed" => {
            let (count, clients) = (num(4), usize::try_from(num(5)).unwrap());
            let r = http
                .post(format!("{url}/api/v2/event/"))
                .bearer_auth(&token)
                .json(&json!({"title": format!("{count} photos")}))
                .send()
                .await
                .expect("event");
            assert!(r.status().is_success(), "event: {}", r.status());
            let event = r.json::<serde_json::Value>().await.expect("json")["id"].as_i64().expect("id");
            let meta = |i: u64| {
                use base64::Engine as _;
                let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
                format!("filename {},event {}", b64(&format!("photo-{i:05}.png")), b64(&event.to_string()))
            };
            futures_util::stream::iter(0..count)
                .for_each_concurrent(clients, |i| {
                    let (http, url, token, meta) = (&http, &url, &token, &meta);
                    async move {
                        // A 48 x 32 PNG of its own colours: a real photo's thumbnail path, cheaply.
                        let img = image::RgbImage::from_fn(48, 32, |x, y| {
                            image::Rgb([(i * 37 % 256) as u8, (x * 5) as u8, (y * 7 + (i % 97) as u32) as u8])
                        });
                        let mut png = std::io::Cursor::new(Vec::new());
                        img.write_to(&mut png, image::ImageFormat::Png).expect("png");
                        let png = png.into_inner();
                        let r = http
                            .post(format!("{url}/api/v2/media/tus/"))
                            .bearer_auth(token)
                            .header("Tus-Resumable", "1.0.0")
                            .header("Upload-Length", png.len().to_string())
                            .header("Upload-Metadata", meta(i))
                            .header("Content-Type", "application/offset+octet-stream")
                            .body(png)
                            .send()
                            .await
                            .expect("upload");
                        assert!(r.status().is_success(), "upload: {}", r.status());
                        assert!(r.headers().get("media-gallery-error").is_none(), "added to the gallery");
                    }
                })
                .await;
            println!("{}", json!({"event": event, "photos": count}));
        }
        "make-jpeg" => {
            let (w, h) = (u32::try_from(num(3)).unwrap(), u32::try_from(num(4)).unwrap());
            let mut x = seed | 1;
            let img = image::RgbImage::from_fn(w, h, |px, py| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let grain = (x % 24) as u32;
                let c = |base: u32| u8::try_from((base + grain).min(255)).unwrap();
                image::Rgb([c(px * 200 / w), c(py * 200 / h), c((px + py) * 100 / (w + h) + 40)])
            });
            let mut out = std::io::BufWriter::new(std::fs::File::create(&args[2]).expect("create"));
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).expect("encode");
        }
        "thumbs" => {
            let jpeg = std::fs::read(&args[4]).expect("read the JPEG");
            let (sequential, concurrent) = (num(5), num(6));
            let links: Vec<String> = futures_util::stream::iter(0..sequential + concurrent)
                .map(|i| {
                    let (http, url, token) = (&http, &url, &token);
                    let mut data = jpeg.clone();
                    data.extend_from_slice(&i.to_le_bytes());
                    async move {
                        let total = data.len() as u64;
                        let id = send_chunk(http, url, token, None, 0, data, total).await;
                        complete(http, url, token, &id).await["thumbnail"].as_str().expect("thumbnail").to_owned()
                    }
                })
                .buffered(4)
                .collect()
                .await;
            let fetch = |link: String| {
                let http = &http;
                async move {
                    let r = http.get(link).send().await.expect("thumbnail");
                    assert!(r.status().is_success(), "thumbnail: {}", r.status());
                    r.bytes().await.expect("thumbnail body").len()
                }
            };
            let (first, rest) = links.split_at(usize::try_from(sequential).unwrap());
            let mut ms = Vec::new();
            for link in first {
                let started = Instant::now();
                fetch(link.clone()).await;
                ms.push((started.elapsed().as_secs_f64() * 10000.0).round() / 10.0);
            }
            let started = Instant::now();
            futures_util::future::join_all(rest.iter().cloned().map(fetch)).await;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                json!({"first_thumb_ms": ms, "median_ms": median(&ms),
                    "concurrent": concurrent, "thumbs/s": (concurrent as f64 / secs * 10.0).round() / 10.0})
            );
        }
        "poster" => {
            let video = std::fs::read(&args[4]).expect("read the video");
            let runs = num(5);
            let total = video.len() as u64;
            let (mut facts_ms, mut preview_ms) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let mut id: Option<String> = None;
                for (i, part) in video.chunks(16 << 20).enumerate() {
                    let start = (i * (16 << 20)) as u64;
                    id = Some(send_chunk(&http, &url, &token, id.as_deref(), start, part.to_vec(), total).await);
                }
                let media = complete(&http, &url, &token, id.as_deref().unwrap()).await;
                let completed = Instant::now();
                let path = format!("{url}/api/v2/media/{}/", media["id"]);
                loop {
                    let m: serde_json::Value =
                        http.get(&path).bearer_auth(&token).send().await.expect("media").json().await.expect("json");
                    if !m["duration"].is_null() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                facts_ms.push((completed.elapsed().as_secs_f64() * 10000.0).round() / 10.0);
                let started = Instant::now();
                let r = http.get(media["preview"].as_str().expect("preview")).send().await.expect("preview");
                assert!(r.status().is_success(), "preview: {}", r.status());
                r.bytes().await.expect("preview body");
                preview_ms.push((started.elapsed().as_secs_f64() * 10000.0).round() / 10.0);
                let gone = http
                    .delete(format!("{url}/api/v1/images"))
                    .bearer_auth(&token)
                    .json(&json!({"image_ids": [media["uuid"]]}))
                    .send()
                    .await
                    .expect("delete");
                assert!(gone.status().is_success(), "delete: {}", gone.status());
            }
            println!(
                "{}",
                json!({"preview_ms": preview_ms, "median_ms": median(&preview_ms),
                    "facts_ms": facts_ms, "facts_median_ms": median(&facts_ms)})
            );
        }
        other => panic!("unknown mode {other}"),
    }
}
