//! From a Lambda event to CloudWatch Logs subscription messages: event kinds, base64, gzip.

pub mod models;
mod one_member;
pub mod payload;
pub(crate) mod unescape;
mod usual_message;

pub use models::{IncomingEvent, LogEvent, SubscriptionMessage};
pub use payload::{
    DecodeBuffers, DecodeError, GZIP_MAGIC, decode_base64, decompress, is_gzip, parse_messages,
};
