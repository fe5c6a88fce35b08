//! Polls a table's DynamoDB stream (DynamoDB Local has no Lambda triggers) and
//! turns its records into the events Lambda would deliver, for the same handler.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};

use billing::cleanup::Cleanup;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long a batch being applied may go on once a stop is asked for.
pub const STOP_GRACE: Duration = Duration::from_millis(1500);
/// The longest wait between polls while the stream cannot be read or applied.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Polls every `interval` and hands each batch read to `cleanup`, in order,
/// until `stop` resolves.
///
/// - A poll or a batch that fails is retried after a wait that doubles with
///   each failure in a row (from `interval` up to [`MAX_BACKOFF`]), so an
///   unreachable DynamoDB is not hammered; a clean round resets it. A failed
///   batch stays first in line and is retried whole, as Lambda redelivers one.
/// - On `stop`, a poll in flight is dropped (it applied nothing) and a batch
///   being applied gets [`STOP_GRACE`] to finish. A batch cut short, and those
///   not begun, are left to the next run, which reads the stream from its
///   start: each record's change is one transaction or an idempotent step
///   (folds, resumable cascades, events with stable ids), so none is left half
///   applied and applying one again changes nothing.
pub async fn consume(
    mut poller: StreamPoller,
    cleanup: &Cleanup,
    interval: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut pending: VecDeque<Event> = VecDeque::new();
    let mut failures = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(backoff(interval, failures)) => {}
            () = &mut stop => return,
        }
        let polled = tokio::select! {
            polled = poller.poll() => polled,
            () = &mut stop => return,
        };
        let mut clean = match polled {
            Ok(events) => {
                pending.extend(events);
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "stream poll failed");
                false
            }
        };
        while let Some(event) = pending.front() {
            let result = {
                let applied = cleanup.on_stream(event);
                tokio::pin!(applied);
                tokio::select! {
                    result = &mut applied => result,
                    () = &mut stop => {
                        if tokio::time::timeout(STOP_GRACE, applied).await.is_err() {
                            tracing::warn!("stopped during a stream batch; the next run applies it again");
                        }
                        return;
                    }
                }
            };
            if let Err(err) = result {
                tracing::warn!(error = %err, "stream batch failed; retrying on the next poll");
                clean = false;
                break;
            }
            pending.pop_front();
        }
        failures = if clean { 0 } else { failures.saturating_add(1) };
        if failures > 0 {
            tracing::info!(
                retry_in_ms =
                    u64::try_from(backoff(interval, failures).as_millis()).unwrap_or(u64::MAX),
                "stream consumer backing off"
            );
        }
    }
}

/// The wait before the next poll after `failures` failed rounds in a row.
fn backoff(interval: Duration, failures: u32) -> Duration {
    interval
        .saturating_mul(1 << failures.min(16))
        .min(MAX_BACKOFF.max(interval))
}

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
