//! `listen --metrics-addr`: the listener's metrics in Prometheus' text format on `/metrics`, and
//! `/healthz` for a load balancer or an orchestrator's probe.
//!
//! The library counts through the `metrics` facade; here Prometheus' exporter is installed as the
//! recorder (before the listener starts, so that its handles reach it) and rendered on each
//! scrape. The exporter's own HTTP listener is not used: it serves nothing but the metrics, and
//! `/healthz` needs the listener's status.

use std::io;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytebase_signal_client::listener::StatusReader;
use bytebase_signal_client::metrics::{DELIVERY_LAG_BUCKETS, DELIVERY_LAG_SECONDS};
use bytebase_signal_client::Status;

use crate::error::Error;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// Installs Prometheus' recorder for this process, with the delivery lag as a histogram (buckets
/// aggregate across replicas; a summary would not).
pub(crate) fn install_recorder() -> Result<PrometheusHandle, Error> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DELIVERY_LAG_SECONDS.to_owned()), DELIVERY_LAG_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| Error::Io(io::Error::other(format!("cannot install the Prometheus recorder: {e}"))))
}

/// Binds `addr` (so that a port in use fails the command at once, naming it).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|e| {
        Error::Io(io::Error::new(e.kind(), format!("--metrics-addr {addr}: cannot listen: {e}")))
    })
}

/// What `/metrics` and `/healthz` read.
#[derive(Clone)]
struct Served {
    metrics: PrometheusHandle,
    listener: StatusReader,
}

/// Serves `/metrics` and `/healthz` on `socket` until `shutdown`.
pub(crate) async fn serve(
    socket: TcpListener,
    metrics: PrometheusHandle,
    listener: StatusReader,
    shutdown: CancellationToken,
) {
    let addr = socket.local_addr().map(|a| a.to_string()).unwrap_or_default();
    // Histogram samples wait in the recorder until drained into buckets: drain them now and then
    // even if nobody scrapes, so that memory stays bounded.
    let upkeep = {
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => metrics.run_upkeep(),
                }
            }
        })
    };
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(healthz))
        .with_state(Served { metrics, listener });
    info!("serving http://{addr}/metrics and http://{addr}/healthz");
    let served = axum::serve(socket, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
    if let Err(e) = served {
        error!(%addr, error = %e, "metrics endpoint failed");
    }
    upkeep.abort();
}

/// How often histogram samples are drained into their buckets between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

async fn render(State(served): State<Served>) -> impl IntoResponse {
    // Histograms are drained into their buckets on upkeep; a scrape is the moment it matters.
    served.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], served.metrics.render())
}

async fn healthz(State(served): State<Served>) -> impl IntoResponse {
    let (healthy, why) = health(&served.listener.status());
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, [(header::CONTENT_TYPE, "text/plain")], format!("{why}\n"))
}

/// Whether a listener in `status` does its job, and why not: it must be connected, and hear
/// notifications unless no probe has answered yet.
pub(crate) fn health(status: &Status) -> (bool, String) {
    if !status.connected {
        let why = status.last_error.as_deref().unwrap_or("not connected yet");
        return (false, format!("not connected: {why}"));
    }
    if status.notifications == Some(false) {
        return (
            false,
            "connected, but notifications do not arrive (a transaction-pooling proxy?): cancels come \
             from the log's replays alone"
                .to_owned(),
        );
    }
    (true, "ok: connected".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_while_connected_and_not_deaf() {
        // A status is the listener's to build; here each field is set on a default one.
        let with = |change: &dyn Fn(&mut Status)| {
            let mut status = Status::default();
            status.connected = true;
            change(&mut status);
            status
        };
        let connected = with(&|_| {});
        assert_eq!(health(&connected), (true, "ok: connected".to_owned()), "no probe answer yet");
        assert!(health(&with(&|s| s.notifications = Some(true))).0);
        let (ok, why) = health(&with(&|s| s.notifications = Some(false)));
        assert!(!ok && why.contains("notifications do not arrive"), "{why}");
        let lost = with(&|s| {
            s.connected = false;
            s.last_error = Some("connection closed by the server".into());
        });
        assert_eq!(health(&lost), (false, "not connected: connection closed by the server".to_owned()));
        assert_eq!(health(&Status::default()).1, "not connected: not connected yet");
    }
}
