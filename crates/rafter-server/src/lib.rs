//! placeholder
pub mod config;
/// Errors that stop the server.
#[derive(Debug)]
pub struct ServerError;
impl std::fmt::Display for ServerError { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "not built yet") } }
/// Runs the server until it is stopped.
pub fn run(_args: config::ServeArgs) -> Result<(), ServerError> { Err(ServerError) }
