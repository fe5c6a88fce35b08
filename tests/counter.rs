//! Counts every DynamoDB API call a client makes, through an SDK interceptor.
//!
//! The interceptor also asks DynamoDB to return consumed capacity (it sets
//! `ReturnConsumedCapacity=TOTAL` on reads and writes): the calls stay the same,
//! only their responses grow by a few bytes, and the bench can report what each
//! request read and wrote.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::{
    batch_get_item::BatchGetItemInput, batch_write_item::BatchWriteItemInput,
    create_table::CreateTableInput, delete_item::DeleteItemInput,
    describe_table::DescribeTableInput, get_item::GetItemInput, get_item::GetItemOutput,
    put_item::PutItemInput, query::QueryInput, query::QueryOutput, scan::ScanInput,
    scan::ScanOutput, transact_get_items::TransactGetItemsInput,
    transact_write_items::TransactWriteItemsInput, transact_write_items::TransactWriteItemsOutput,
    update_item::UpdateItemInput,
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a client did: a snapshot of the counters, or the difference of two.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calls {
    /// API calls (operations), whatever their outcome.
    pub calls: u64,
    /// HTTP attempts, retries included (equals `calls` when nothing was retried).
    pub attempts: u64,
    /// Calls that ended in an error (e.g. a cancelled transaction).
    pub errors: u64,
    /// Items DynamoDB read: `ScannedCount` of queries and scans, 1 per item a GetItem found.
    pub items_read: u64,
    /// Write actions sent: items in a TransactWriteItems, 1 per PutItem/UpdateItem/DeleteItem.
    pub writes: u64,
    /// Capacity units consumed (reads and writes), as DynamoDB reports them.
    pub capacity: f64,
    /// Calls per operation name.
    pub by_op: BTreeMap<&'static str, u64>,
}

impl Calls {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Calls) -> Calls {
        let mut by_op = self.by_op.clone();
        for (op, n) in &earlier.by_op {
            if let Some(count) = by_op.get_mut(op) {
                *count -= n;
            }
        }
        by_op.retain(|_, n| *n > 0);
        Calls {
            calls: self.calls - earlier.calls,
            attempts: self.attempts - earlier.attempts,
            errors: self.errors - earlier.errors,
            items_read: self.items_read - earlier.items_read,
            writes: self.writes - earlier.writes,
            capacity: self.capacity - earlier.capacity,
            by_op,
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    calls: AtomicU64,
    attempts: AtomicU64,
    errors: AtomicU64,
    items_read: AtomicU64,
    writes: AtomicU64,
    /// Capacity units in thousandths, so an atomic integer can hold them.
    capacity_milli: AtomicU64,
    by_op: Mutex<BTreeMap<&'static str, u64>>,
}

/// The interceptor: clone it into a client config, read it with [`Counter::snapshot`].
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<Counts>);

impl Counter {
    /// The counters now.
    pub fn snapshot(&self) -> Calls {
        let c = &self.0;
        Calls {
            calls: c.calls.load(Ordering::SeqCst),
            attempts: c.attempts.load(Ordering::SeqCst),
            errors: c.errors.load(Ordering::SeqCst),
            items_read: c.items_read.load(Ordering::SeqCst),
            writes: c.writes.load(Ordering::SeqCst),
            capacity: c.capacity_milli.load(Ordering::SeqCst) as f64 / 1000.0,
            by_op: c
                .by_op
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    fn add_capacity(&self, consumed: Option<&ConsumedCapacity>) {
        if let Some(units) = consumed.and_then(|c| c.capacity_units) {
            let milli = (units * 1000.0).round() as u64;
            self.0.capacity_milli.fetch_add(milli, Ordering::SeqCst);
        }
    }
}

/// Operation name and write actions of a call, from its typed input.
macro_rules! classify {
    ($input:expr, $($ty:ty => $name:literal, |$i:pat_param| $writes:expr;)*) => {{
        $(
            if let Some($i) = $input.downcast_ref::<$ty>() {
                return ($name, $writes);
            }
        )*
        ("other", 0)
    }};
}

fn classify(context: &InterceptorContext) -> (&'static str, u64) {
    let Some(input) = context.input() else {
        return ("other", 0);
    };
    let len = |n: usize| n as u64;
    classify!(input,
        GetItemInput => "GetItem", |_| 0;
        QueryInput => "Query", |_| 0;
        ScanInput => "Scan", |_| 0;
        BatchGetItemInput => "BatchGetItem", |_| 0;
        TransactGetItemsInput => "TransactGetItems", |_| 0;
        TransactWriteItemsInput => "TransactWriteItems",
            |i| i.transact_items.as_ref().map_or(0, |t| len(t.len()));
        PutItemInput => "PutItem", |_| 1;
        UpdateItemInput => "UpdateItem", |_| 1;
        DeleteItemInput => "DeleteItem", |_| 1;
        BatchWriteItemInput => "BatchWriteItem",
            |i| i.request_items.as_ref().map_or(0, |r| r.values().map(|v| len(v.len())).sum());
        CreateTableInput => "CreateTable", |_| 0;
        DescribeTableInput => "DescribeTable", |_| 0;
    )
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "BenchCallCounter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let total = Some(ReturnConsumedCapacity::Total);
        if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<ScanInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
            i.return_consumed_capacity = total;
        }
        Ok(())
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (op, writes) = classify(context.inner());
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0.writes.fetch_add(writes, Ordering::SeqCst);
        *self
            .0
            .by_op
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(op)
            .or_default() += 1;
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let output = match context.output_or_error() {
            Some(Ok(output)) => output,
            _ => {
                self.0.errors.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
        };
        let read = if let Some(o) = output.downcast_ref::<QueryOutput>() {
            self.add_capacity(o.consumed_capacity.as_ref());
            o.scanned_count.max(0) as u64
        } else if let Some(o) = output.downcast_ref::<ScanOutput>() {
            self.add_capacity(o.consumed_capacity.as_ref());
            o.scanned_count.max(0) as u64
        } else if let Some(o) = output.downcast_ref::<GetItemOutput>() {
            self.add_capacity(o.consumed_capacity.as_ref());
            u64::from(o.item.is_some())
        } else {
            if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
                for consumed in o.consumed_capacity.iter().flatten() {
                    self.add_capacity(Some(consumed));
                }
            }
            0
        };
        self.0.items_read.fetch_add(read, Ordering::SeqCst);
        Ok(())
    }
}
