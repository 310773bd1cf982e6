//! The baseline: a bare tonic service with one unary RPC (`Echo`) and one streaming RPC
//! (`Subscribe`), and nothing else: no engine, no journal, no validation. Whatever Switchboard
//! costs on top of gRPC is the distance to it.

use std::pin::Pin;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("switchboard.bench");
}

use pb::echo_service_server::{EchoService, EchoServiceServer};
use pb::{EchoReply, EchoRequest, SubscribeRequest};

/// Broadcasts a subscriber may fall behind by before it misses some (then its stream ends).
const SUBSCRIBER_BUFFER: usize = 4096;

struct Echo {
    subscribers: broadcast::Sender<EchoReply>,
}

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        let reply = EchoReply {
            payload: request.payload,
        };
        if request.broadcast {
            // No subscribers is not an error for an echo.
            let _ = self.subscribers.send(reply.clone());
        }
        Ok(Response::new(reply))
    }

    type SubscribeStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

    async fn subscribe(
        &self,
        _request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let stream = BroadcastStream::new(self.subscribers.subscribe())
            .map_while(Result::ok)
            .map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// `suite serve-echo`: serves on a free loopback port until SIGTERM; announces its address on
/// stderr as Switchboard does.
pub fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let (subscribers, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        // Stops on SIGTERM with a normal exit, as Switchboard does, so that tools watching
        // the process (a heap profiler, say) see it end cleanly.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM can be watched");
        tokio::spawn(async move {
            terminate.recv().await;
            std::process::exit(0);
        });
        eprintln!("echo serving addr={addr}");
        tonic::transport::Server::builder()
            .add_service(EchoServiceServer::new(Echo { subscribers }))
            // As Switchboard serves: no Nagle delay on small frames.
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await
            .expect("the echo server serves");
    });
}
