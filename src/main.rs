//! The `wasmsched` command line.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wasmsched",
    version,
    about = "Schedule and route events; user logic runs as sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the scheduler, the broker and the HTTP API from a config file.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = "wasmsched.toml")]
        config: PathBuf,
        /// Listen address; overrides `[server] listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Serve beyond loopback without an admin token (the admin API
        /// open to the network); warned about at every start.
        #[arg(long)]
        allow_unauthenticated: bool,
    },
    /// Check a plugin: which worlds it implements and what it imports.
    Check {
        /// A compiled plugin (`.wasm` component).
        file: PathBuf,
    },
    /// Inspect cron expressions.
    #[command(subcommand)]
    Cron(CronCommand),
    /// Create a plugin project (source, manifest, build script) that builds and runs as is.
    New {
        /// The plugin name: lowercase letters, digits and `_`, starting with a letter.
        name: String,
        /// The language of the plugin.
        #[arg(long, value_enum)]
        lang: cli::new::Lang,
        /// The project directory (default ./NAME); must not exist, or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fire an api trigger of a running host.
    Trigger {
        /// The trigger id.
        id: String,
        /// The payload, a JSON object.
        #[arg(long, default_value = "{}")]
        data: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Publish an event into a running host's broker.
    Publish {
        /// The topic, e.g. logs.app.error.
        topic: String,
        /// The event data as JSON, e.g. '{"level": "ERROR"}'.
        data: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Print events matching a pattern as they arrive.
    Tail {
        /// Topic pattern: `*` = one segment, `**` = any number.
        #[arg(default_value = "**")]
        pattern: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show a running host's triggers: state, next fires, counts.
    Status {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// List dead letters (events triggers gave up on), or replay or discard one.
    Deadletters {
        #[command(subcommand)]
        action: Option<DeadLetterCommand>,
        /// Only this trigger's.
        #[arg(long)]
        trigger: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Publish an event once, later: at an instant or after a delay (a one-off timer).
    At {
        /// When: an RFC 3339 instant (2030-01-07T09:00:00Z) or a delay (90s, 5m, 2h).
        when: String,
        /// The topic, e.g. reminders.invoice.
        topic: String,
        /// The event data as JSON.
        #[arg(default_value = "{}")]
        data: String,
        /// The timer's id (the same id twice makes one timer); default: a new one.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Fire a cron trigger for every scheduled instant of a past range, with a progress bar.
    Backfill {
        /// The cron trigger's id.
        id: String,
        /// The range's start, exclusive (RFC 3339).
        #[arg(long)]
        from: String,
        /// The range's end, inclusive (RFC 3339).
        #[arg(long)]
        to: String,
        /// Firings per second.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show a trigger's run history, newest first.
    Runs {
        /// The trigger id.
        id: String,
        /// How many runs to show (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Hand a dead letter's event to its trigger again; discard it if that works.
    Replay {
        /// The dead letter's id.
        id: String,
    },
    /// Discard a dead letter.
    Discard {
        /// The dead letter's id.
        id: String,
    },
}

#[derive(clap::Args)]
struct RemoteArgs {
    /// The host's HTTP address.
    #[arg(long, env = "WASMSCHED_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
}

#[derive(Subcommand)]
enum CronCommand {
    /// Print the next fire instants, one RFC 3339 timestamp per line.
    Next {
        /// A 5-field crontab expression, e.g. "0 9 * * MON-FRI", or a macro like @daily.
        expression: String,
        /// IANA time zone, e.g. Asia/Seoul.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// List fires strictly after this instant (RFC 3339); default now.
        #[arg(long)]
        from: Option<String>,
        /// How many fires to print.
        #[arg(short = 'n', default_value_t = 5)]
        count: usize,
        #[command(flatten)]
        jitter: JitterArgs,
    },
    /// Describe an expression in plain English and show its next 5 fires.
    Explain {
        expression: String,
        #[arg(long, default_value = "UTC")]
        tz: String,
        #[command(flatten)]
        jitter: JitterArgs,
    },
}

#[derive(clap::Args)]
struct JitterArgs {
    /// The trigger's `jitter`, e.g. 90s: fires are shifted by the trigger's offset.
    #[arg(long, requires = "id")]
    jitter: Option<String>,
    /// The trigger id the jitter offset is derived from.
    #[arg(long)]
    id: Option<String>,
}

impl JitterArgs {
    fn into_jitter(self) -> cli::cron::Jitter {
        cli::cron::Jitter {
            jitter: self.jitter,
            id: self.id,
        }
    }
}

type ClientFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + 'a>>;

/// Runs one client call against a running host.
fn client(
    remote: &RemoteArgs,
    call: impl for<'a> FnOnce(&'a cli::client::Remote) -> ClientFuture<'a>,
) -> anyhow::Result<()> {
    let remote = cli::client::Remote::new(&remote.url);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(call(&remote))
}

/// The error and its causes on one line, skipping a cause whose text the
/// message already includes.
fn one_line(error: &anyhow::Error) -> String {
    let mut message = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message = format!("{message}: {cause}");
        }
    }
    message
}

/// Lets `wasmsched cron next ... | head` end quietly, as other Unix tools
/// do, instead of panicking on a closed stdout: restore SIGPIPE's default
/// (Rust ignores it).
fn die_quietly_on_closed_pipes() {
    #[cfg(unix)]
    // SAFETY: called at the start of main, before any thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Not for the server: it must survive clients that hang up mid-write.
    if !matches!(cli.command, Command::Run { .. }) {
        die_quietly_on_closed_pipes();
    }
    let result = match cli.command {
        Command::Cron(CronCommand::Next {
            expression,
            tz,
            from,
            count,
            jitter,
        }) => cli::cron::next(
            &expression,
            &tz,
            from.as_deref(),
            count,
            &jitter.into_jitter(),
        ),
        Command::Cron(CronCommand::Explain {
            expression,
            tz,
            jitter,
        }) => cli::cron::explain(&expression, &tz, &jitter.into_jitter()),
        Command::Check { file } => cli::check::run(&file),
        Command::New { name, lang, dir } => cli::new::run(&name, lang, dir.as_deref()),
        Command::Run {
            config,
            listen,
            allow_unauthenticated,
        } => cli::run::run(&config, listen, allow_unauthenticated),
        Command::Trigger { id, data, remote } => client(&remote, |r| {
            Box::pin(async move { r.trigger(&id, &data).await })
        }),
        Command::Publish {
            topic,
            data,
            remote,
        } => client(&remote, |r| {
            Box::pin(async move { r.publish(&topic, &data).await })
        }),
        Command::Tail { pattern, remote } => {
            client(&remote, |r| Box::pin(async move { r.tail(&pattern).await }))
        }
        Command::Status { remote } => {
            client(&remote, |r| Box::pin(async move { r.status().await }))
        }
        Command::Deadletters {
            action,
            trigger,
            remote,
        } => client(&remote, |r| {
            Box::pin(async move {
                match action {
                    None => r.dead_letters(trigger.as_deref()).await,
                    Some(DeadLetterCommand::Replay { id }) => r.replay_dead_letter(&id).await,
                    Some(DeadLetterCommand::Discard { id }) => r.discard_dead_letter(&id).await,
                }
            })
        }),
        Command::At {
            when,
            topic,
            data,
            id,
            remote,
        } => client(&remote, |r| {
            Box::pin(async move { r.at(&when, &topic, &data, id.as_deref()).await })
        }),
        Command::Backfill {
            id,
            from,
            to,
            rate,
            remote,
        } => client(&remote, |r| {
            Box::pin(async move { r.backfill(&id, &from, &to, rate).await })
        }),
        Command::Runs { id, limit, remote } => client(&remote, |r| {
            Box::pin(async move { r.runs(&id, limit).await })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}
