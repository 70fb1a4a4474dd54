//! Outcomes to deliverables: Firehose response records and S3 objects.

pub mod firehose;
pub mod objects;
#[cfg(feature = "security-lake")]
pub mod parquet;
