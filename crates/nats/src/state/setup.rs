//! Making (or checking) the buckets and the run stream by hand, as
//! nats-server 2.9 needs, and following the buckets other replicas change.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use wasmsched_core::state::{Retention, StateChange, StateError, key_id};

/// Creates the stream `wanted` describes, or opens the one of that name;
/// returns it with the configuration the server reports (errors name `what`).
pub(super) async fn create_or_open(
    jetstream: &Context,
    wanted: &stream::Config,
    what: &str,
) -> Result<(stream::Stream, stream::Config), StateError> {
    let open_error = |message: String| StateError::Open {
        store: what.to_owned(),
        message,
    };
    let create = || jetstream.get_or_create_stream(wanted.clone());
    let mut stream = crate::broker::while_cluster_settles(create)
        .await
        .map_err(|e| {
            let hint = crate::broker::replicas_hint(wanted.num_replicas, &e);
            open_error(format!("cannot create or open it: {hint}"))
        })?;
    let kept = stream.info().await.map_err(|e| open_error(e.to_string()))?;
    let config = kept.config.clone();
    crate::broker::check_replicas(&wanted.name, config.num_replicas, wanted.num_replicas)
        .map_err(open_error)?;
    Ok((stream, config))
}

/// Creates the stream behind key-value bucket `name` as nats-server 2.9
/// takes it, or checks the one there; returns the bucket.
pub(super) async fn ensure_bucket(
    jetstream: &Context,
    name: &str,
    replicas: usize,
) -> Result<kv::Store, StateError> {
    ensure_expiring_bucket(jetstream, name, replicas, Duration::ZERO).await
}

/// [`ensure_bucket`] whose keys expire `max_age` after their last write
/// (zero: never).
pub(super) async fn ensure_expiring_bucket(
    jetstream: &Context,
    name: &str,
    replicas: usize,
    max_age: Duration,
) -> Result<kv::Store, StateError> {
    let wanted = stream::Config {
        max_age,
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    let what = format!("JetStream bucket {name}");
    let (_, kept) = create_or_open(jetstream, &wanted, &what).await?;
    let open_error = |message: String| StateError::Open {
        store: what.clone(),
        message,
    };
    if kept.subjects != wanted.subjects || kept.max_messages_per_subject < 1 {
        return Err(open_error(format!(
            "stream KV_{name} exists with subjects {:?}, not a key-value bucket; delete it or \
             choose another [broker] stream",
            kept.subjects
        )));
    }
    jetstream
        .get_key_value(name)
        .await
        .map_err(|e| open_error(e.to_string()))
}

pub(super) async fn ensure_runs_stream(
    jetstream: &Context,
    name: &str,
    prefix: &str,
    retention: Retention,
    replicas: usize,
) -> Result<stream::Stream, StateError> {
    let wanted = stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{prefix}.>")],
        max_messages_per_subject: retention.max_runs.max(1) as i64,
        max_age: retention.max_age,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        allow_direct: true,
        num_replicas: replicas,
        ..Default::default()
    };
    let what = format!("JetStream stream {name}");
    let (stream, kept) = create_or_open(jetstream, &wanted, &what).await?;
    let open_error = |message: String| StateError::Open {
        store: what.clone(),
        message,
    };
    if kept.subjects != wanted.subjects {
        return Err(open_error(format!(
            "it exists with subjects {:?}, not {:?}",
            kept.subjects, wanted.subjects
        )));
    }
    if kept.max_messages_per_subject != wanted.max_messages_per_subject
        || kept.max_age != wanted.max_age
    {
        // The retention settings changed: the stream follows them.
        jetstream
            .update_stream(wanted)
            .await
            .map_err(|e| open_error(format!("cannot apply [state] history settings: {e}")))?;
    }
    Ok(stream)
}

#[derive(Clone, Copy)]
pub(super) enum Bucket {
    Triggers,
    Paused,
    Timers,
}

/// Turns the puts and deletes of `bucket` into [`StateChange`]s until
/// `stop`; a watch that breaks (the connection was lost) is started again.
pub(super) async fn follow(
    bucket: kv::Store,
    changes: broadcast::Sender<StateChange>,
    kind: Bucket,
    stop: CancellationToken,
) {
    let mut restarted = false;
    loop {
        let watch = tokio::select! {
            () = stop.cancelled() => return,
            watch = bucket.watch_all() => watch,
        };
        if restarted {
            // What changed while the watch was down is not replayed.
            let _ = changes.send(StateChange::Resync);
        }
        restarted = true;
        match watch {
            Ok(mut watch) => loop {
                let entry = tokio::select! {
                    () = stop.cancelled() => return,
                    entry = watch.next() => entry,
                };
                let Some(Ok(entry)) = entry else { break };
                if let Some(change) = change(&entry, kind) {
                    // No receiver yet is fine: the host reads the state itself at start.
                    let _ = changes.send(change);
                }
            },
            Err(error) => {
                tracing::warn!(bucket = %bucket.name, "cannot follow other replicas' changes: {error}; retrying");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn change(entry: &kv::Entry, kind: Bucket) -> Option<StateChange> {
    let id = key_id(&entry.key)?;
    Some(match kind {
        Bucket::Paused => StateChange::Pause(id),
        Bucket::Triggers => StateChange::Trigger(id),
        Bucket::Timers => StateChange::Timer(id),
    })
}
