//! Polls a table's DynamoDB stream (DynamoDB Local has no Lambda triggers) and
//! turns its records into the events Lambda would deliver, for the same handler.

use std::collections::{HashMap, HashSet};

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Reads every shard of one table's stream from its start, in order.
pub struct StreamPoller {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    region: String,
    /// Next iterator of each open shard.
    open: HashMap<String, String>,
    /// Shards read to their end.
    done: HashSet<String>,
}

impl StreamPoller {
    /// A poller on `table`'s latest stream.
    pub async fn open(
        dynamodb: &aws_sdk_dynamodb::Client,
        client: aws_sdk_dynamodbstreams::Client,
        table: &str,
    ) -> Result<Self, Error> {
        let described = dynamodb.describe_table().table_name(table).send().await?;
        let stream_arn = described
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| format!("table {table} has no stream"))?;
        let region = client
            .config()
            .region()
            .map(ToString::to_string)
            .unwrap_or_default();
        Ok(Self {
            client,
            stream_arn,
            region,
            open: HashMap::new(),
            done: HashSet::new(),
        })
    }

    /// Everything written since the last poll, as one event per shard read.
    pub async fn poll(&mut self) -> Result<Vec<Event>, Error> {
        self.discover_shards().await?;
        let mut events = Vec::new();
        let shards: Vec<String> = self.open.keys().cloned().collect();
        for shard in shards {
            let Some(iterator) = self.open.remove(&shard) else {
                continue;
            };
            let out = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await?;
            match out.next_shard_iterator {
                Some(next) => {
                    self.open.insert(shard, next);
                }
                None => {
                    self.done.insert(shard);
                }
            }
            let records: Vec<EventRecord> = out
                .records
                .unwrap_or_default()
                .into_iter()
                .map(|r| self.lambda_record(r))
                .collect();
            if !records.is_empty() {
                let mut event = Event::default();
                event.records = records;
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn discover_shards(&mut self) -> Result<(), Error> {
        let described = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await?;
        let shards = described
            .stream_description
            .and_then(|d| d.shards)
            .unwrap_or_default();
        for shard in shards {
            let Some(id) = shard.shard_id else { continue };
            if self.open.contains_key(&id) || self.done.contains(&id) {
                continue;
            }
            let iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await?
                .shard_iterator;
            match iterator {
                Some(it) => self.open.insert(id, it),
                None => self.done.insert(id).then_some(String::new()),
            };
        }
        Ok(())
    }

    /// The record as Lambda's event source mapping would deliver it.
    fn lambda_record(&self, record: Record) -> EventRecord {
        let mut out = EventRecord::default();
        out.event_id = record.event_id.unwrap_or_default();
        out.event_name = record
            .event_name
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        out.event_source = Some("aws:dynamodb".to_owned());
        out.event_source_arn = Some(self.stream_arn.clone());
        out.aws_region = self.region.clone();
        if let Some(change) = record.dynamodb {
            let mut stream = StreamRecord::default();
            stream.keys = change.keys.unwrap_or_default().into();
            stream.new_image = change.new_image.unwrap_or_default().into();
            stream.old_image = change.old_image.unwrap_or_default().into();
            stream.sequence_number = change.sequence_number;
            stream.size_bytes = change.size_bytes.unwrap_or_default();
            if let Some(at) = change.approximate_creation_date_time {
                stream.approximate_creation_date_time =
                    chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos())
                        .unwrap_or_default();
            }
            out.change = stream;
        }
        out
    }
}
