//! The etcd v3 gRPC services. Each file serves one service; RPCs that later
//! work implements answer `Unimplemented` naming the RPC.

pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod conflicts;
pub mod dial;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod peer;
mod range_stream;
pub mod session_meta;
pub mod watch;

/// Defines trait methods that answer `Unimplemented` naming the RPC. It
/// writes the boxed-future form `#[async_trait]` expects, because that
/// attribute runs before this macro is expanded.
macro_rules! unimplemented_rpcs {
    ($service:literal; $($method:ident($req:ty) -> $resp:ty;)*) => {$(
        fn $method<'life0, 'async_trait>(
            &'life0 self,
            _request: tonic::Request<$req>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<
            Output = Result<tonic::Response<$resp>, tonic::Status>> + Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async move {
                Err($crate::error::unimplemented(concat!($service, ".", stringify!($method))))
            })
        }
    )*};
}
pub(crate) use unimplemented_rpcs;
