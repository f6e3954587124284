//! Prometheus metrics: requests by method, route and status, their latency, upload
//! bytes, and what garbage collection removed.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pub upload_bytes: IntCounter,
    gc_removed: IntCounterVec,
    gc_removed_bytes: IntCounterVec,
    /// Totals kept elsewhere (the database's statements, the S3 store's requests), read
    /// into their counters as the metrics are rendered.
    counted: std::sync::Mutex<Vec<(IntCounter, Total)>>,
}

/// A running total some other part of the service keeps.
pub type Total = Box<dyn Fn() -> u64 + Send + Sync>;

impl Metrics {
    /// # Errors
    /// When a metric cannot be registered (a programming error).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by method, route and status")
                .buckets(vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &["method", "route", "status"],
        )?;
        let upload_bytes = IntCounter::new("mediabox_upload_bytes_total", "Bytes received in upload chunks")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let gc_removed = IntCounterVec::new(
            Opts::new(
                "mediabox_gc_removed_total",
                "What garbage collection removed: expired uploads, stray staging, orphan blobs",
            ),
            &["kind"],
        )?;
        let gc_removed_bytes = IntCounterVec::new(
            Opts::new("mediabox_gc_removed_bytes_total", "Bytes freed by garbage collection, by what it removed"),
            &["kind"],
        )?;
        registry.register(Box::new(upload_bytes.clone()))?;
        registry.register(Box::new(gc_removed.clone()))?;
        registry.register(Box::new(gc_removed_bytes.clone()))?;
        // Each kind shows from the start, at zero: a dashboard can tell "nothing removed"
        // from "no gc metrics".
        for kind in ["uploads", "staging", "blobs"] {
            gc_removed.with_label_values(&[kind]);
            gc_removed_bytes.with_label_values(&[kind]);
        }
        Ok(Self { registry, requests, latency, upload_bytes, gc_removed, gc_removed_bytes, counted: Vec::new().into() })
    }

    /// Shows `total` as counter `name`.
    ///
    /// # Errors
    /// When the name is taken or invalid (a programming error).
    pub fn count(&self, name: &str, help: &str, total: Total) -> Result<(), prometheus::Error> {
        let counter = IntCounter::new(name, help)?;
        self.registry.register(Box::new(counter.clone()))?;
        self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((counter, total));
        Ok(())
    }

    /// Counts what one garbage collection step removed (`kind`: `uploads`, `staging` or
    /// `blobs`).
    pub fn gc_removed(&self, kind: &str, count: usize, bytes: u64) {
        self.gc_removed.with_label_values(&[kind]).inc_by(count as u64);
        self.gc_removed_bytes.with_label_values(&[kind]).inc_by(bytes);
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        self.requests.with_label_values(&[method, route, &status]).inc();
        self.latency.with_label_values(&[method, route, &status]).observe(seconds);
    }

    /// The text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        for (counter, total) in self.counted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            // Under the lock: two renders at once never add the same difference twice.
            counter.inc_by(total().saturating_sub(counter.get()));
        }
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
