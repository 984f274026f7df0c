//! CloudWatch: custom metrics, batched.

use crate::AwsError;
use aws_config::SdkConfig;
use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};

const SERVICE: &str = "cloudwatch";

/// One value of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// Metric name.
    pub name: String,
    /// Dimensions, name and value.
    pub dimensions: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// `Count`, `Seconds`, or `None` for a plain number.
    pub unit: Option<&'static str>,
    /// When, unix seconds.
    pub timestamp: i64,
}

/// CloudWatch client wrapper.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: Client,
}

impl CloudWatch {
    /// A client from the shared SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }

    /// Sends `data` under `namespace`, 500 values per call (PutMetricData takes up to 1,000).
    pub async fn put(&self, namespace: &str, data: &[Datum]) -> Result<(), AwsError> {
        for chunk in data.chunks(500) {
            let metric_data = chunk
                .iter()
                .map(|d| {
                    MetricDatum::builder()
                        .metric_name(&d.name)
                        .set_dimensions(Some(
                            d.dimensions
                                .iter()
                                .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                                .collect(),
                        ))
                        .value(d.value)
                        .unit(StandardUnit::from(d.unit.unwrap_or("None")))
                        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                            d.timestamp,
                        ))
                        .build()
                })
                .collect();
            self.client
                .put_metric_data()
                .namespace(namespace)
                .set_metric_data(Some(metric_data))
                .send()
                .await
                .map_err(|e| AwsError::sdk(SERVICE, "PutMetricData", e))?;
        }
        Ok(())
    }
}
