//! Slow lists handed to the tenant's index advisor: one log line per proposal, and with
//! `--auto-index` the proposed index created through the ordinary collection update.

use std::time::Duration;

use serde_json::{Map, Value, json};
use warren_records::advisor::{AUTO_AFTER, Advice, Noted};
use warren_tenant::Tenant;
use warren_tenant::ops::{self, CollectionChange};

use crate::router::ApiState;

/// Notes one slow list of `tenant`.
pub(crate) fn note(state: &ApiState, tenant: &Tenant, advice: &Advice, took: Duration) {
    let count = match tenant.advisor().note(advice, took) {
        Noted::New => {
            let ms = took.as_secs_f64() * 1000.0;
            tracing::info!(
                tenant = %tenant.id(),
                collection = %advice.collection,
                index = %advice.index_sql(),
                ms,
                "slow list without an index: proposing one"
            );
            let mut data = Map::new();
            data.insert("type".into(), "indexAdvisor".into());
            data.insert("collection".into(), advice.collection.clone().into());
            data.insert("columns".into(), json!(advice.columns));
            data.insert("index".into(), advice.index_sql().into());
            data.insert("execTime".into(), json!(ms));
            tenant.logs().record(warren_logs::Entry::new(
                warren_logs::level::WARN,
                format!(
                    "Slow list of {}: an index on ({}) would serve it",
                    advice.collection,
                    advice.columns.join(", ")
                ),
                data,
            ));
            1
        }
        Noted::Again(n) => n,
        Noted::Full => return,
    };
    if state.auto_index && count >= AUTO_AFTER && tenant.advisor().claim_auto(advice) {
        let (tenant, advice, services) = (
            tenant.clone(),
            advice.clone(),
            crate::uploads::services(state),
        );
        tokio::spawn(async move { create_index(&tenant, &services, &advice).await });
    }
}

/// Adds the proposed index to the collection's `indexes`, logged either way.
async fn create_index(tenant: &Tenant, services: &ops::Services, advice: &Advice) {
    let catalog = tenant.catalog();
    let Some(entry) = catalog.get(&advice.collection) else {
        return;
    };
    if advice.served_by(&entry.collection) {
        return;
    }
    let mut indexes: Vec<Value> = entry
        .collection
        .indexes
        .iter()
        .map(|i| Value::from(i.as_str()))
        .collect();
    indexes.push(advice.index_sql().into());
    let change = CollectionChange::Update {
        collection: entry.collection.id.clone(),
        patch: json!({ "indexes": indexes }),
    };
    let outcome = ops::change_collection(tenant, services, change).await;
    let mut data = Map::new();
    data.insert("type".into(), "indexAdvisor".into());
    data.insert("collection".into(), advice.collection.clone().into());
    data.insert("index".into(), advice.index_sql().into());
    let (level, message) = match &outcome {
        Ok(_) => {
            tracing::info!(tenant = %tenant.id(), index = %advice.index_sql(), "auto-index: index created");
            (
                warren_logs::level::INFO,
                format!("Auto-index: created {}", advice.index_name()),
            )
        }
        Err(e) => {
            tracing::warn!(tenant = %tenant.id(), index = %advice.index_sql(), error = %e, "auto-index: index not created");
            data.insert("error".into(), e.to_string().into());
            (
                warren_logs::level::ERROR,
                format!("Auto-index: could not create {}", advice.index_name()),
            )
        }
    };
    tenant
        .logs()
        .record(warren_logs::Entry::new(level, message, data));
}
