//! The table definition: attributes, keys, indexes, stream and time to live.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification,
};

use super::keys::{
    DELETING_INDEX, DELETING_SINCE, GSI1PK, GSI1SK, LSI1SK, MEMBERS_INDEX, PK, SK, TTL_ATTRIBUTE,
};

/// The table definition: keys, the members index, the deletions index and the stream.
pub struct TableDefinition;

impl TableDefinition {
    /// Key attributes, all strings.
    pub fn attributes() -> Vec<AttributeDefinition> {
        [PK, SK, LSI1SK, GSI1PK, GSI1SK]
            .into_iter()
            .filter_map(|name| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .ok()
            })
            .collect()
    }

    /// Table key schema.
    pub fn key_schema() -> Vec<KeySchemaElement> {
        key_schema(PK, SK)
    }

    /// The members-by-rank local index.
    pub fn local_indexes() -> Vec<LocalSecondaryIndex> {
        LocalSecondaryIndex::builder()
            .index_name(MEMBERS_INDEX)
            .set_key_schema(Some(key_schema(PK, LSI1SK)))
            .projection(all_attributes())
            .build()
            .into_iter()
            .collect()
    }

    /// The deletions index: only customers being deleted have its keys, and
    /// the monitor reads only `deletingSince` from it.
    pub fn global_indexes() -> Vec<GlobalSecondaryIndex> {
        GlobalSecondaryIndex::builder()
            .index_name(DELETING_INDEX.0)
            .set_key_schema(Some(key_schema(DELETING_INDEX.1, GSI1SK)))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .non_key_attributes(DELETING_SINCE)
                    .build(),
            )
            .build()
            .into_iter()
            .collect()
    }

    /// Items expire at [`TTL_ATTRIBUTE`] (the applied events' ids).
    pub fn time_to_live() -> TimeToLiveSpecification {
        TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(TTL_ATTRIBUTE)
            .build()
            .unwrap_or_else(|_| unreachable!("both fields are set"))
    }

    /// On-demand billing.
    pub fn billing_mode() -> BillingMode {
        BillingMode::PayPerRequest
    }

    /// A stream with old and new images, for the cleanup consumer.
    pub fn stream() -> StreamSpecification {
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewAndOldImages)
            .build()
            .unwrap_or_else(|_| unreachable!("stream_enabled is set"))
    }
}

/// The members index projects every attribute: a page is served by it alone.
fn all_attributes() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

fn key_schema(hash: &str, range: &str) -> Vec<KeySchemaElement> {
    [(hash, KeyType::Hash), (range, KeyType::Range)]
        .into_iter()
        .filter_map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .ok()
        })
        .collect()
}
