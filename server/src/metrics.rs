//! Prometheus metrics: requests, check-ins, publishes and delta jobs, served at `/metrics`.
//! One registry per server instance, so tests running several servers do not share counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// HTTP method, from [`method_label`].
    pub method: String,
    /// Matched route template (not the raw path, to bound cardinality).
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// The `method` label of a request: one of a fixed set, `other` for anything else, so made-up
/// methods cannot add series.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Labels of the outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What happened, e.g. `ok`, `rejected`, `built`, `dropped`.
    pub outcome: String,
}

/// Labels of the anomaly counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The anomaly's kind (`unknown_image`, `rollback_storm`, ...).
    pub kind: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests served.
    pub requests: Family<RequestLabels, Counter>,
    /// Device check-ins, by outcome.
    pub checkins: Family<OutcomeLabels, Counter>,
    /// Release publishes, by outcome.
    pub publishes: Family<OutcomeLabels, Counter>,
    /// Delta builds, by outcome.
    pub delta_builds: Family<OutcomeLabels, Counter>,
    /// Seconds spent in the differ per build.
    pub delta_seconds: Histogram,
    /// Anomalies noticed (new flags and repeats of open ones), by kind.
    pub anomalies: Family<KindLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("otter");
        let requests = Family::<RequestLabels, Counter>::default();
        let checkins = Family::<OutcomeLabels, Counter>::default();
        let publishes = Family::<OutcomeLabels, Counter>::default();
        let delta_builds = Family::<OutcomeLabels, Counter>::default();
        let delta_seconds = Histogram::new(exponential_buckets(0.01, 4.0, 10));
        let anomalies = Family::<KindLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        registry.register("checkins", "Device check-ins by outcome", checkins.clone());
        registry.register(
            "publishes",
            "Release publishes by outcome",
            publishes.clone(),
        );
        registry.register(
            "delta_builds",
            "Delta builds by outcome",
            delta_builds.clone(),
        );
        registry.register(
            "delta_build_seconds",
            "Time spent building one delta",
            delta_seconds.clone(),
        );
        registry.register(
            "anomalies",
            "Anomalies noticed, by kind (GET /api/v1/anomalies lists the flags)",
            anomalies.clone(),
        );
        Self {
            registry,
            requests,
            checkins,
            publishes,
            delta_builds,
            delta_seconds,
            anomalies,
        }
    }
}

impl Metrics {
    /// Counts one outcome in `family`.
    pub fn count(family: &Family<OutcomeLabels, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one noticed anomaly of `kind`.
    pub fn anomaly(&self, kind: crate::anomalies::AnomalyKind) {
        self.anomalies
            .get_or_create(&KindLabels {
                kind: kind.as_str().to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
