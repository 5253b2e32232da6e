//! The Kafka event source mapping's partial batch response.
//!
//! Lambda retries what the function lists here and treats the rest of the
//! batch as done. `aws_lambda_events` has no type for the Kafka shape yet, so
//! it is defined here: `{"batchItemFailures":[{"itemIdentifier":
//! {"partition":"<topic>-<partition>","offset":N}}]}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaBatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<KafkaItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: KafkaItemIdentifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaItemIdentifier {
    /// `<topic>-<partition>`, as the event's record map names it.
    pub partition: String,
    pub offset: i64,
}

impl KafkaBatchResponse {
    pub fn fail(&mut self, partition: &str, offset: i64) {
        self.batch_item_failures
            .push(KafkaItemFailure { item_identifier: KafkaItemIdentifier { partition: partition.to_owned(), offset } });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_the_shape_lambda_expects() {
        let mut response = KafkaBatchResponse::default();
        response.fail("ledgerline.account-events-2", 41);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": {"partition": "ledgerline.account-events-2", "offset": 41}}]})
        );
    }
}
