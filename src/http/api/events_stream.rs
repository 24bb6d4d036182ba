//! `GET /events/stream`: the activity log live, as Server-Sent Events.
//!
//! Each event is one SSE message: `id:` its commit position, `data:` the
//! event as `GET /events` lists it. A reader resumes with `Last-Event-ID`
//! (the last `id:` it saw) and gets every matching event committed after
//! it, read from the store, so nothing is missed across reconnections or
//! instances. Comment lines (`: keep-alive`) every 15 s keep proxies from
//! closing an idle stream.
//!
//! Memory per stream is bounded: a task reads one batch (at most 100
//! events) at a time and hands the body a few chunks through a bounded
//! channel. A reader that takes more than 10 s to accept a chunk is
//! dropped (it resumes with `Last-Event-ID`); writers never wait for
//! readers, they only bump a signal. A stream ends after the propagation
//! window W, so the reader reconnects and is authenticated again: a
//! revoked key or ended session stops receiving events within W, as
//! everywhere else.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::events::{FILTERS, filter, reader};
use super::keys::query;
use super::{Request, Response};
use crate::http::config::HttpConfig;
use crate::http::error::HttpError;
use crate::service::{EventFilter, EventTail, Keyward};

/// A comment line sent when nothing else was for this long.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// A reader that does not accept a chunk within this long is dropped.
const SLOW_READER: Duration = Duration::from_secs(10);

/// Chunks (one per batch of events, or a heartbeat) waiting for the reader.
const BUFFERED_CHUNKS: usize = 4;

/// The longest `Last-Event-ID` accepted (a `u64` in decimal).
const MAX_EVENT_ID: usize = 20;

/// The body of an event stream: chunks produced by the stream's task.
pub(crate) struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl std::fmt::Debug for SseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SseBody")
    }
}

impl futures_core::Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// `GET /events/stream?key_id=&app_id=&account_id=&children=&action=&actor=&from=&to=`
/// with an optional `Last-Event-ID` header (readApiKeys; the filters as on
/// `GET /events`). Without `Last-Event-ID`, events committed from now on.
pub(super) async fn open(
    kw: &Keyward,
    cfg: &HttpConfig,
    req: &Request<'_>,
) -> Result<Response, HttpError> {
    let p = reader(kw, cfg, req).await?;
    let mut f = EventFilter::new();
    for (name, v) in query(cfg, req.query, FILTERS)? {
        filter(cfg, &mut f, name, &v)?;
    }
    let after = req
        .last_event_id
        .map(|v| last_event_id(cfg, v))
        .transpose()?;
    let tail = kw
        .tail_events(p.actor(), p.account(), &f, after)
        .await
        .map_err(|e| HttpError::from_service(cfg, e))?;
    let mut res = Response {
        status: 200,
        headers: vec![
            ("content-type", "text/event-stream".to_owned()),
            ("cache-control", "no-store".to_owned()),
            // nginx and the like: pass each chunk on at once.
            ("x-accel-buffering", "no".to_owned()),
        ],
        body: Vec::new(),
        stream: None,
    };
    if req.method != "HEAD" {
        let lifetime = Duration::try_from(kw.propagation_window()).unwrap_or(HEARTBEAT);
        let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
        tokio::spawn(pump(tail, tx, lifetime));
        res.stream = Some(SseBody { rx });
    }
    Ok(res)
}

/// The position in a `Last-Event-ID` header: the decimal `id:` of an event.
fn last_event_id(cfg: &HttpConfig, v: &[u8]) -> Result<u64, HttpError> {
    std::str::from_utf8(v)
        .ok()
        .map(str::trim)
        .filter(|s| {
            !s.is_empty() && s.len() <= MAX_EVENT_ID && s.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            HttpError::invalid_value(
                cfg,
                "Last-Event-ID",
                "must be the `id:` of an event this stream sent",
            )
        })
}

/// Reads the tail and writes its events until the reader leaves, is too
/// slow, the store fails, or `lifetime` is over.
async fn pump(mut tail: EventTail, tx: mpsc::Sender<Bytes>, lifetime: Duration) {
    let end = tokio::time::Instant::now() + lifetime;
    // Reconnect after 1 s by default (EventSource honours it; a `fetch`
    // reader chooses its own delay).
    if !send(&tx, Bytes::from_static(b"retry: 1000\n\n")).await {
        return;
    }
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            let _ = send(&tx, Bytes::from_static(b": reconnect\n\n")).await;
            return;
        }
        let batch = tokio::select! {
            () = tx.closed() => return,
            b = tail.next(left.min(HEARTBEAT)) => b,
        };
        let chunk = match batch {
            Ok(events) if events.is_empty() => Bytes::from_static(b": keep-alive\n\n"),
            Ok(events) => {
                let mut out = Vec::with_capacity(events.len() * 512);
                for e in &events {
                    out.extend_from_slice(b"id: ");
                    out.extend_from_slice(e.seq.to_string().as_bytes());
                    out.extend_from_slice(b"\ndata: ");
                    // One line: serde_json escapes every newline in strings.
                    let _ = serde_json::to_writer(&mut out, &e.event);
                    out.extend_from_slice(b"\n\n");
                }
                Bytes::from(out)
            }
            Err(e) => {
                tracing::debug!(target: "keyward::events", error = %e, "event stream read failed; closing it");
                return;
            }
        };
        if !send(&tx, chunk).await {
            return;
        }
    }
}

/// Hands `chunk` to the reader; `false` when it left or was too slow.
async fn send(tx: &mpsc::Sender<Bytes>, chunk: Bytes) -> bool {
    matches!(
        tokio::time::timeout(SLOW_READER, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}
