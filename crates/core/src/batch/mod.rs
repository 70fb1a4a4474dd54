//! Outcomes to deliverables: Firehose response records, S3 objects, and the records re-ingested
//! when a response would be too large.

pub mod firehose;
pub mod gzip;
pub mod objects;
#[cfg(feature = "security-lake")]
pub mod parquet;
pub mod reingest;
