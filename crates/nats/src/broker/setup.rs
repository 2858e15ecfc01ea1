//! Connecting, and creating or checking the stream and the durable
//! consumers, verifying what the server kept of what was asked.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};

use super::NatsOptions;
use super::subjects::{Subjects, consumer_name};
use wasmsched_core::broker::BrokerError;

/// Connects, logging each loss and recovery of the connection (the client
/// reconnects on its own, for ever).
pub async fn connect(url: &str) -> Result<async_nats::Client, BrokerError> {
    let logged_url = url.to_owned();
    async_nats::ConnectOptions::new()
        .name("wasmsched")
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let url = logged_url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(%url, "connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%url, "lost the connection to NATS; reconnecting")
                    }
                    // Each failed reconnect attempt: the warning above says it all.
                    async_nats::Event::ClientError(error) => tracing::debug!(%url, "NATS: {error}"),
                    other => tracing::warn!(%url, "NATS: {other}"),
                }
            }
        })
        .connect(servers(url))
        .await
        .map_err(|e| {
            BrokerError::Setup(format!(
                "cannot connect to NATS at {url}: {e} (is `nats-server -js` running there? see [broker] url)"
            ))
        })
}

/// The servers in `url`: one, or several separated by commas (the client
/// tries them in turn when connecting and reconnecting).
fn servers(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Creates the stream, or checks that the one already there captures our
/// subjects; returns a handle to it.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    options: &NatsOptions,
    subjects: &Subjects,
) -> Result<stream::Stream, BrokerError> {
    let name = &options.stream;
    let wanted = stream::Config {
        name: name.clone(),
        subjects: vec![subjects.stream_subject()],
        duplicate_window: options.duplicate_window(),
        max_age: options.max_age(),
        storage: StorageType::File,
        num_replicas: options.replicas,
        ..Default::default()
    };
    let error = |what: &str, e: &dyn std::fmt::Display| {
        BrokerError::Setup(format!(
            "NATS stream `{name}` at {}: {what}: {e}",
            options.url
        ))
    };
    match jetstream.get_stream(name).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(|e| error("reading it", &e))?;
            check_existing_stream(&info.config, &wanted).map_err(|e| error("cannot use it", &e))?;
            Ok(existing)
        }
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(api)
                if api.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            let created = while_cluster_settles(|| jetstream.create_stream(wanted.clone()))
                .await
                .map_err(|e| error("creating it", &replicas_hint(options.replicas, &e)))?;
            let kept = &created.cached_info().config;
            verify(&[
                (
                    "subjects",
                    format!("{:?}", wanted.subjects),
                    format!("{:?}", kept.subjects),
                ),
                (
                    "duplicate_window",
                    secs(wanted.duplicate_window),
                    secs(kept.duplicate_window),
                ),
                ("max_age", secs(wanted.max_age), secs(kept.max_age)),
                (
                    "replicas",
                    wanted.num_replicas.to_string(),
                    kept.num_replicas.to_string(),
                ),
            ])
            .map_err(|e| error("the server did not keep the configuration", &e))?;
            tracing::info!(stream = %name, "created the NATS stream");
            Ok(created)
        }
        Err(e) => Err(error(
            "looking it up (is JetStream enabled: `nats-server -js`?)",
            &e,
        )),
    }
}

/// Runs `attempt` again while JetStream answers that it is not ready: a
/// cluster that just formed, or is electing a leader, times out or is
/// "temporarily unavailable" for a few seconds (two replicas starting
/// together on a new cluster see it). Other errors return at once.
pub async fn while_cluster_settles<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    const ATTEMPTS: usize = 20;
    for _ in 1..ATTEMPTS {
        match attempt().await {
            Err(error) if settling(&error.to_string()) => {
                tracing::debug!("JetStream is not ready ({error}); trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            done => return done,
        }
    }
    attempt().await
}

fn settling(error: &str) -> bool {
    let error = error.to_lowercase();
    ["timed out", "temporarily unavailable", "no meta leader"]
        .iter()
        .any(|s| error.contains(s))
}

/// The server's error, with what to do when it is about replicas (a
/// single server, or a cluster smaller than `[broker] replicas`).
pub fn replicas_hint(replicas: usize, error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let about_replicas = ["replicas", "insufficient resources", "no suitable peers"]
        .iter()
        .any(|s| text.to_lowercase().contains(s));
    match (replicas > 1, about_replicas) {
        (true, true) => format!(
            "{text} ([broker] replicas = {replicas} needs a NATS cluster of at least \
             {replicas} servers with JetStream; use replicas = 1 with a single server)"
        ),
        _ => text,
    }
}

/// Fails if an existing stream keeps fewer copies than `[broker] replicas`
/// asks: it is reported, not changed behind the operator's back.
pub fn check_replicas(name: &str, have: usize, wanted: usize) -> Result<(), String> {
    if have < wanted {
        return Err(format!(
            "`{name}` keeps {have} replica(s), [broker] replicas = {wanted}: raise it \
             (`nats stream edit {name} --replicas {wanted}`) or lower the setting"
        ));
    }
    Ok(())
}

/// A stream made by someone else is used as it is, if it captures our
/// subjects and deduplicates; differences in retention are only logged.
fn check_existing_stream(have: &stream::Config, wanted: &stream::Config) -> Result<(), String> {
    check_replicas(&wanted.name, have.num_replicas, wanted.num_replicas)?;
    if !have.subjects.iter().any(|s| wanted.subjects.contains(s)) {
        return Err(format!(
            "it captures {:?}, not {:?}: change [broker] stream or subject_prefix",
            have.subjects, wanted.subjects
        ));
    }
    if have.retention != RetentionPolicy::Limits {
        return Err(format!(
            "its retention is {:?}; replicas and live streams need `limits` retention",
            have.retention
        ));
    }
    if have.duplicate_window.is_zero() {
        return Err(
            "its duplicate_window is 0, so replicas would publish each cron instant twice"
                .to_owned(),
        );
    }
    if have.duplicate_window != wanted.duplicate_window || have.max_age != wanted.max_age {
        tracing::warn!(
            stream = %wanted.name,
            duplicate_window = %secs(have.duplicate_window),
            max_age = %secs(have.max_age),
            "the NATS stream exists with other settings than [broker] asks for; keeping them"
        );
    }
    Ok(())
}

/// Gets or creates `trigger`'s durable consumer of `filter`, and returns
/// its name. The name carries a hash of the filter, so a trigger whose
/// pattern changed gets a new consumer instead of taking over (and
/// emptying) the one that replicas still on the old pattern read.
///
/// A consumer made when the trigger starts begins at new events; one made
/// again later (it was deleted, or the server lost its store) begins at
/// `resume_from`, the time of the last event the feed saw.
pub async fn durable_consumer(
    stream: &stream::Stream,
    options: &NatsOptions,
    trigger: &str,
    filter: &str,
    resume_from: Option<time::OffsetDateTime>,
) -> Result<String, BrokerError> {
    let name = consumer_name(trigger, filter);
    let deliver_policy = match resume_from {
        None => DeliverPolicy::New,
        Some(start_time) => DeliverPolicy::ByStartTime { start_time },
    };
    let wanted = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: filter.to_owned(),
        deliver_policy,
        ack_policy: AckPolicy::Explicit,
        ack_wait: options.ack_wait(),
        // Unlimited on the server: the host counts attempts itself and
        // dead-letters, so an event is never silently dropped.
        max_deliver: -1,
        num_replicas: options.replicas,
        ..Default::default()
    };
    let error = |what: &str, e: &dyn std::fmt::Display| {
        BrokerError::Setup(format!(
            "trigger `{trigger}`: NATS consumer `{name}` on stream `{}`: {what}: {e}",
            options.stream
        ))
    };
    let kept = match stream.consumer_info(&name).await {
        Ok(info) => {
            if info.config.ack_wait != wanted.ack_wait {
                tracing::warn!(trigger, consumer = %name, ack_wait = %secs(info.config.ack_wait), "the consumer exists with another ack_wait; keeping it");
            }
            if info.config.deliver_subject.is_some() {
                return Err(error(
                    "cannot use it",
                    &"it is a push consumer; delete it and the host creates a pull consumer",
                ));
            }
            info.config
        }
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            let created: jetstream::consumer::PullConsumer =
                while_cluster_settles(|| stream.create_consumer(wanted.clone()))
                    .await
                    .map_err(|e| error("creating it", &replicas_hint(options.replicas, &e)))?;
            let kept = created.cached_info().config.clone();
            verify(&[("ack_wait", secs(wanted.ack_wait), secs(kept.ack_wait))])
                .map_err(|e| error("the server did not keep the configuration", &e))?;
            if resume_from.is_some() {
                tracing::warn!(trigger, consumer = %name, "the trigger's consumer was gone: made it again, resuming at the last event seen");
            }
            kept
        }
        Err(e) => return Err(error("looking it up", &e)),
    };
    // Whether made here or found: these decide that no event is lost.
    verify(&[
        (
            "filter_subject",
            wanted.filter_subject.clone(),
            kept.filter_subject.clone(),
        ),
        (
            "ack_policy",
            format!("{:?}", wanted.ack_policy),
            format!("{:?}", kept.ack_policy),
        ),
        (
            "max_deliver",
            wanted.max_deliver.to_string(),
            kept.max_deliver.to_string(),
        ),
    ])
    .map_err(|e| error("its configuration would lose events", &e))?;
    Ok(name)
}

/// Fails naming every setting the server did not keep as asked.
fn verify(settings: &[(&str, String, String)]) -> Result<(), String> {
    let lost: Vec<String> = settings
        .iter()
        .filter(|(_, asked, kept)| asked != kept)
        .map(|(key, asked, kept)| format!("{key}: asked {asked}, got {kept}"))
        .collect();
    match lost.is_empty() {
        true => Ok(()),
        false => Err(lost.join("; ")),
    }
}

fn secs(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}
