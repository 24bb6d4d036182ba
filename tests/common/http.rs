//! One request/response model and one client per framework, shared by
//! the HTTP tests (`#[path = "common/http.rs"] mod http_client;`): the
//! same request sent to axum (through `tower::ServiceExt::oneshot`) and to
//! actix-web (through `actix_web::test`), answered as one [`Resp`].
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use actix_web::dev::{Service, ServiceResponse};
use axum::Router;
use axum::extract::ConnectInfo;
use keyward::{AccountId, Actor, Keyward, NewKey};
use serde_json::Value;
use tower::ServiceExt;

/// A key's credentials as the headers send them.
#[derive(Debug, Clone)]
pub struct Cred {
    pub id: String,
    pub secret: String,
}

/// Issues a key and keeps its credentials.
pub async fn issue(kw: &Keyward, account: &AccountId, new: NewKey) -> Cred {
    let i = kw.issue_key(Actor::System, account, new).await.unwrap();
    Cred {
        id: i.key.id.to_string(),
        secret: i.secret.expose().to_owned(),
    }
}

/// The peer address requests come from unless they say otherwise.
pub const PEER: &str = "203.0.113.7:40000";

#[derive(Debug, Clone)]
pub struct Req {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
}

pub fn req(method: &'static str, path: impl Into<String>) -> Req {
    Req {
        method,
        path: path.into(),
        headers: Vec::new(),
        body: Vec::new(),
        peer: PEER.parse().unwrap(),
    }
}

impl Req {
    pub fn header(mut self, k: &'static str, v: impl AsRef<[u8]>) -> Self {
        self.headers.push((k, v.as_ref().to_vec()));
        self
    }
    pub fn key(self, c: &Cred) -> Self {
        self.header("x-api-key", &c.id)
            .header("x-api-secret", &c.secret)
    }
    pub fn bearer(self, t: &str) -> Self {
        self.header("authorization", format!("Bearer {t}"))
    }
    pub fn json(self, v: Value) -> Self {
        self.raw("application/json", serde_json::to_vec(&v).unwrap())
    }
    pub fn raw(mut self, ct: &'static str, body: impl Into<Vec<u8>>) -> Self {
        self = self.header("content-type", ct);
        self.body = body.into();
        self
    }
    pub fn peer(mut self, p: &str) -> Self {
        self.peer = p.parse().unwrap();
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// What both adapters must agree on: the status, the headers named in
    /// `kept` (sorted), the body.
    pub fn contract(&self, kept: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, _)| kept.contains(&k.as_str()))
            .cloned()
            .collect();
        h.sort();
        (self.status, h, self.body.clone())
    }
}

pub trait Client {
    const NAME: &'static str;
    async fn send(&self, r: Req) -> Resp;
}

pub struct AxumClient(pub Router);

impl Client for AxumClient {
    const NAME: &'static str = "axum";
    async fn send(&self, r: Req) -> Resp {
        let mut b = axum::http::Request::builder().method(r.method).uri(&r.path);
        for (k, v) in &r.headers {
            b = b.header(*k, axum::http::HeaderValue::from_bytes(v).unwrap());
        }
        let mut request = b.body(axum::body::Body::from(r.body)).unwrap();
        request.extensions_mut().insert(ConnectInfo(r.peer));
        let res = self.0.clone().oneshot(request).await.unwrap();
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }
}

pub struct ActixClient<S>(pub S);

impl<S, B> Client for ActixClient<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    const NAME: &'static str = "actix";
    async fn send(&self, r: Req) -> Resp {
        let mut t = actix_web::test::TestRequest::default()
            .method(actix_web::http::Method::from_bytes(r.method.as_bytes()).unwrap())
            .uri(&r.path)
            .peer_addr(r.peer);
        for (k, v) in &r.headers {
            t = t.append_header((
                *k,
                actix_web::http::header::HeaderValue::from_bytes(v).unwrap(),
            ));
        }
        let t = t.set_payload(r.body);
        let res = actix_web::test::call_service(&self.0, t.to_request()).await;
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = actix_web::test::read_body(res).await.to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }
}
