//! `wasmsched run`: the host and its HTTP API, on the broker `[broker]`
//! names (the embedded memory broker unless told otherwise).

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use wasmsched::TopicPattern;
use wasmsched::app::AppState;
use wasmsched::broker::SubscriberKind;
use wasmsched::config::{Config, TokenKind};
use wasmsched::host::Host;
use wasmsched::web;

pub fn run(
    config_path: &Path,
    listen: Option<SocketAddr>,
    allow_unauthenticated: bool,
) -> Result<()> {
    let mut config =
        Config::load(config_path).with_context(|| format!("loading {}", config_path.display()))?;
    let telemetry = super::telemetry::init(&config.telemetry)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    config.server.allow_unauthenticated |= allow_unauthenticated;
    match web::raise_open_file_limit() {
        Some((before, after)) if after > before => {
            tracing::info!("raised the open-file limit from {before} to {after} (the hard limit)")
        }
        Some((_, limit)) => tracing::info!(
            "open-file limit: {limit} (the hard limit; raise it with LimitNOFILE= or ulimit -Hn)"
        ),
        None => {}
    }
    let runtime = wasmsched::host::runtime()?;
    let served = runtime.block_on(serve(config));
    // Whatever is still stuck (past the grace period) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    telemetry.shutdown();
    served
}

/// Refuses to serve beyond loopback with no admin token, unless allowed.
fn check_exposure(config: &Config, has_admin_token: bool) -> Result<()> {
    let listen = config.server.listen;
    if listen.ip().is_loopback() || has_admin_token {
        return Ok(());
    }
    if config.server.allow_unauthenticated {
        tracing::warn!(
            %listen,
            "the admin API, publishing and the event stream are open to anyone who can reach              {listen} (no admin token, --allow-unauthenticated)"
        );
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {listen} without an admin token: anyone who can reach it \
         could add triggers and read every event. Set one (export \
         WASMSCHED_ADMIN_TOKEN=$(openssl rand -hex 32), or admin_token = {{ file = \"...\" }} \
         under [server] in {}), listen on 127.0.0.1, or pass --allow-unauthenticated",
        config.path.display()
    )
}

async fn serve(config: Config) -> Result<()> {
    let listen = config.server.listen;
    // Before anything starts: a refused exposure fires nothing.
    let server = config.server.clone();
    let tokens = tokio::task::spawn_blocking(move || server.read_tokens())
        .await?
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.path.display()))?;
    check_exposure(
        &config,
        tokens.iter().any(|(kind, _)| *kind == TokenKind::Admin),
    )?;
    tracing::info!(config = %config.path.display(), plugins = %config.plugins_dir.display(), triggers = config.triggers.len(), "starting wasmsched");
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (in use? try --listen 127.0.0.1:0)"))?;
    let config_path = config.path.clone();
    let tls = config.server.tls.is_some();
    let grace = config.server.shutdown_grace;
    let host = Host::start(config)
        .await
        .with_context(|| config_path.display().to_string())?;
    let running = host
        .triggers()
        .list()
        .await
        .values()
        .filter(|r| r.trigger.is_running())
        .count();
    tracing::info!(running, "triggers running");
    release_memory_once_settled(&host);
    let problems = host.problems().len();
    if problems > 0 {
        tracing::warn!(
            count = problems,
            "started with problems (see errors above); the rest is running"
        );
    }
    let state = AppState::new(host.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    log_events(&host).await?;
    let scheme = if tls { "https" } else { "http" };
    let address = listener.local_addr()?;
    tracing::info!("HTTP API on {scheme}://{address}");
    tracing::info!("dashboard: open {scheme}://{address}/ in a browser");
    let connections = state.connections.clone();
    let signalled = std::sync::Arc::new(std::sync::OnceLock::new());
    let signal = {
        let signalled = signalled.clone();
        async move {
            shutdown_signal().await;
            let _ = signalled.set(tokio::time::Instant::now());
        }
    };
    web::serve(listener, state, signal).await?;
    let busy = connections.open.load(std::sync::atomic::Ordering::Relaxed);
    // One grace for the whole stop: what the connections' drain took is
    // not given again to the triggers.
    let spent = signalled
        .get()
        .map_or(Default::default(), |at| at.elapsed());
    let grace_left = grace.saturating_sub(spent);
    let grace_text = wasmsched::units::format_duration(grace);
    tracing::info!(
        "shutting down: letting firings in flight finish (at most {grace_text}, [server] shutdown_grace)"
    );
    let stopped = host.stop_within(grace_left).await;
    if busy > 0 || stopped.is_err() {
        let mut still = stopped.err().unwrap_or_default();
        if busy > 0 {
            still.push(format!(
                "{busy} HTTP connection(s) with a request in flight"
            ));
        }
        anyhow::bail!(
            "stopping took longer than [server] shutdown_grace ({grace_text}); still stopping: {}",
            match still.is_empty() {
                true => "the broker or the state store".to_owned(),
                false => still.join(", "),
            }
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Logs every published event (an observer: it never slows publishers).
async fn log_events(host: &Host) -> Result<()> {
    let all = TopicPattern::new("**").expect("valid pattern");
    let mut events = host
        .broker()
        .subscribe(&all, SubscriberKind::Observer)
        .await?;
    tokio::spawn(async move {
        while let Some(delivery) = events.next().await {
            let event = delivery.event;
            tracing::info!(topic = %event.topic, id = %event.id, data = %event.data, "event");
        }
    });
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = interrupt => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("signal received: no longer accepting requests");
}

/// Once every cron trigger has started, hands the memory freed since the
/// process began back to the OS: glibc keeps freed pages in its arenas,
/// and parsing a config of 100 000 triggers and starting them frees tens
/// of MiB (BENCHMARKS.md).
fn release_memory_once_settled(host: &std::sync::Arc<Host>) {
    let host = host.clone();
    tokio::spawn(async move {
        while host.triggers().starting() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // It walks the whole heap: not on a runtime worker.
        let _ = tokio::task::spawn_blocking(|| {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe {
                libc::malloc_trim(0);
            }
        })
        .await;
        tracing::debug!(triggers = host.triggers().count(), "every trigger started");
    });
}
