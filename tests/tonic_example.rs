//! End to end over 127.0.0.1: the tonic example's Greeter behind
//! keyward's layer, on SQLite, called by a tonic client with keys in the
//! gRPC metadata. Each fresh key's first call takes the cold path.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../examples/tonic_server/greeter.rs"]
mod greeter;

use greeter::{HelloReply, HelloRequest};
use keyward::http::KeywardHttp;
use keyward::{Actor, IssuedKey, Keyward, NewAccount, NewKey, PermissionSet};
use tonic::transport::Channel;
use tonic::{Code, Status};

struct Fixture {
    kw: Keyward,
    channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
    let store = keyward::store::connect(&url).await.unwrap();
    // Keys are issued by another instance on the same database, so that
    // the server meets each one cold (store read, argon2).
    let kw = Keyward::builder()
        .shared_store(store.clone())
        .build()
        .unwrap();
    let served = Keyward::builder().shared_store(store).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = KeywardHttp::new(served.clone());
    let server = tokio::spawn(async move {
        greeter::serve(&http, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        served.shutdown().await.unwrap();
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Fixture {
        kw,
        channel,
        stop: Some(stop),
        server,
        _dir: dir,
    }
}

impl Fixture {
    async fn key(&self, account: &keyward::AccountId, permission: &str) -> IssuedKey {
        self.kw
            .issue_key(
                Actor::System,
                account,
                NewKey::new("grpc").permissions(PermissionSet::parse([permission]).unwrap()),
            )
            .await
            .unwrap()
    }

    /// `SayHello` with `metadata` (name, value) pairs.
    async fn call(&self, metadata: &[(&'static str, String)]) -> Result<HelloReply, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        let mut req = tonic::Request::new(HelloRequest {
            name: "tester".into(),
        });
        for (name, value) in metadata {
            req.metadata_mut().insert(*name, value.parse().unwrap());
        }
        let path = http::uri::PathAndQuery::from_static(greeter::SAY_HELLO);
        grpc.unary(req, path, tonic_prost::ProstCodec::default())
            .await
            .map(tonic::Response::into_inner)
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.server.await.unwrap();
        self.kw.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn grpc_calls_are_authenticated_by_the_layer() {
    let fx = start().await;
    let perms = PermissionSet::parse([greeter::PERMISSION, "readAccounts"]).unwrap();
    let account = fx
        .kw
        .create_account(Actor::System, NewAccount::new("grpc", perms))
        .await
        .unwrap();
    let good = fx.key(&account.id, greeter::PERMISSION).await;
    let lacking = fx.key(&account.id, "readAccounts").await;
    let bearer = |k: &IssuedKey| {
        let single = keyward::combine_key(fx.kw.prefix(), &k.key.id, &k.secret).unwrap();
        vec![("authorization", format!("Bearer {}", single.expose()))]
    };

    // A valid key in `authorization: Bearer`: cold (store + argon2), then
    // warm.
    for _ in 0..2 {
        let reply = fx
            .call(&bearer(&good))
            .await
            .expect("a valid key is served");
        assert_eq!(reply.message, "hello, tester");
        assert_eq!(reply.account_id, account.id.to_string());
    }
    // The same key as x-api-key + x-api-secret.
    let pair = vec![
        ("x-api-key", good.key.id.to_string()),
        ("x-api-secret", good.secret.expose().to_owned()),
    ];
    let reply = fx.call(&pair).await.expect("key headers");
    assert_eq!(reply.account_id, account.id.to_string());

    // No key.
    let e = fx.call(&[]).await.expect_err("no key");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // A wrong secret (a fresh key's cold path decides it).
    let wrong = vec![
        ("x-api-key", lacking.key.id.to_string()),
        ("x-api-secret", good.secret.expose().to_owned()),
    ];
    let e = fx.call(&wrong).await.expect_err("wrong secret");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains(good.secret.expose()));
    // A key without the permission.
    let e = fx.call(&bearer(&lacking)).await.expect_err("lacking");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(
        e.message(),
        format!("missing permission {}", greeter::PERMISSION)
    );

    fx.stop().await;
}
