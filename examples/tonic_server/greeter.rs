//! The example's gRPC service, hand-written (no protoc, no build script):
//! `keyward.example.Greeter/SayHello`, which greets the caller's account,
//! behind keyward's permission layer.
//!
//! ```proto
//! package keyward.example;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; string account_id = 2; }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use keyward::Principal;
use keyward::http::KeywardHttp;
use keyward::http::tower::RequireLayer;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpConnectInfo;
use tonic::{Request, Response, Status};

/// The permission every call needs.
pub(crate) const PERMISSION: &str = "readGreetings";

/// The one method's path.
pub(crate) const SAY_HELLO: &str = "/keyward.example.Greeter/SayHello";

/// `HelloRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub(crate) name: String,
}

/// `HelloReply`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub(crate) message: String,
    /// The caller's account, from the verified principal.
    #[prost(string, tag = "2")]
    pub(crate) account_id: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The `SayHello` handler: the principal the layer put in the request
/// extensions, which tonic hands on to the `tonic::Request`.
#[derive(Debug, Clone, Copy)]
struct SayHello;

impl UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<Response<HelloReply>, Status>>;

    fn call(&mut self, request: Request<HelloRequest>) -> Self::Future {
        Box::pin(async move {
            // Always there behind the layer; a server without it would
            // answer UNAUTHENTICATED rather than serve anyone.
            let Some(principal) = request.extensions().get::<Principal>().cloned() else {
                return Err(Status::unauthenticated("no keyward principal"));
            };
            let name = request.into_inner().name;
            Ok(Response::new(HelloReply {
                message: format!("hello, {name}"),
                account_id: principal.account_id().to_string(),
            }))
        })
    }
}

/// The Greeter service as tonic's generated code would write it: a
/// tower service of `http::Request<tonic::body::Body>`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GreeterServer;

impl NamedService for GreeterServer {
    const NAME: &'static str = "keyward.example.Greeter";
}

impl tower::Service<http::Request<Body>> for GreeterServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != SAY_HELLO {
            return Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) });
        }
        Box::pin(async move {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(SayHello, req).await)
        })
    }
}

/// keyward's layer for this server: [`PERMISSION`] on every call,
/// refusals as gRPC statuses, the client address from tonic's
/// `TcpConnectInfo` (for keys restricted to networks, audit and usage).
pub(crate) fn layer(http: &KeywardHttp) -> RequireLayer<keyward::http::tower::GrpcRefusal> {
    RequireLayer::new(http, PERMISSION).grpc().client_ip(|ext| {
        ext.get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.ip())
    })
}

/// Serves the Greeter on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    http: &KeywardHttp,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .layer(layer(http))
        .add_service(GreeterServer)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}
