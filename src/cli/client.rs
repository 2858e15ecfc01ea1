//! Clients of a running host: `trigger`, `publish`, `tail`, `status`,
//! `runs`, `deadletters`, `at`, `backfill`.

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::Value;

/// Where the host is and how to authenticate to its admin API.
pub struct Remote {
    base: String,
    admin_token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    pub fn new(url: &str) -> Self {
        Self {
            base: url.trim_end_matches('/').to_owned(),
            admin_token: std::env::var(wasmsched::http::ADMIN_TOKEN_ENV).ok(),
            http: reqwest::Client::new(),
        }
    }

    fn admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; a non-2xx answer becomes an error carrying the
    /// host's `{"error": ...}` message.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach wasmsched at {} (is `wasmsched run` running?)",
                self.base
            )
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["error"].as_str().unwrap_or("no details");
            bail!("{status}: {message}");
        }
        Ok(body)
    }

    /// Fires api trigger `id` with `data` (a JSON object).
    pub async fn trigger(&self, id: &str, data: &str) -> Result<()> {
        let data: Value = serde_json::from_str(data).context("--data is not valid JSON")?;
        let info = self
            .send(
                self.admin(
                    self.http
                        .get(format!("{}/api/admin/triggers/{id}", self.base)),
                ),
            )
            .await?;
        let path = info["path"].as_str().with_context(|| {
            format!(
                "trigger `{id}` is a {} trigger, not an api trigger",
                info["kind"]
            )
        })?;
        let answer = self
            .send(
                self.http
                    .post(format!("{}{path}/trigger", self.base))
                    .json(&serde_json::json!({ "data": data })),
            )
            .await?;
        println!("{answer}");
        Ok(())
    }

    /// Publishes `data` on `topic`.
    pub async fn publish(&self, topic: &str, data: &str) -> Result<()> {
        let data: Value = serde_json::from_str(data).context("the event data is not valid JSON")?;
        let body = serde_json::json!({ "topic": topic, "data": data });
        let answer = self
            .send(
                self.http
                    .post(format!("{}/api/events", self.base))
                    .json(&body),
            )
            .await?;
        println!("{answer}");
        Ok(())
    }

    /// Prints every event matching `pattern` as it arrives, one per line.
    pub async fn tail(&self, pattern: &str) -> Result<()> {
        let response = self
            .http
            .get(format!("{}/api/events/stream", self.base))
            .query(&[("pattern", pattern)])
            .send()
            .await
            .with_context(|| format!("cannot reach wasmsched at {}", self.base))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            bail!(
                "{status}: {}",
                body["error"].as_str().unwrap_or("no details")
            );
        }
        let mut stream = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(chunk) = stream.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                if let Some(json) = line.trim_end().strip_prefix("data:") {
                    print_event(json.trim_start());
                }
            }
        }
        Ok(())
    }

    /// The broker, then a table of triggers with next fires and counts.
    pub async fn status(&self) -> Result<()> {
        let triggers = self
            .send(self.admin(self.http.get(format!("{}/api/admin/triggers", self.base))))
            .await?;
        // 503 while the broker is unreachable: still a health report.
        let health: Value = self
            .http
            .get(format!("{}/healthz", self.base))
            .send()
            .await?
            .json()
            .await?;
        let broker = &health["broker"];
        let connection = match broker["connected"].as_bool() {
            Some(true) => "connected",
            _ => "NOT CONNECTED",
        };
        let place = [&broker["url"], &broker["stream"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(" stream ");
        println!(
            "broker: {} {place} ({connection})\n",
            broker["kind"].as_str().unwrap_or("?")
        );
        println!(
            "{:<22} {:<6} {:<26} {:<8} {:>6} {:>6} {:>8}  NEXT / SOURCE / PATH",
            "TRIGGER", "KIND", "TOPIC", "STATE", "FIRES", "ERRORS", "REJECTED"
        );
        for t in triggers.as_array().into_iter().flatten() {
            let state = match (t["paused"].as_bool(), t["running"].as_bool()) {
                (Some(true), _) => "paused",
                (_, Some(true)) => "running",
                _ => "stopped",
            };
            let detail = t["next_fires"][0]
                .as_str()
                .or(t["source"].as_str())
                .or(t["path"].as_str())
                .unwrap_or("");
            println!(
                "{:<22} {:<6} {:<26} {:<8} {:>6} {:>6} {:>8}  {}",
                t["id"].as_str().unwrap_or("?"),
                t["kind"].as_str().unwrap_or("?"),
                t["topic"].as_str().unwrap_or("?"),
                state,
                t["fire_count"].as_u64().unwrap_or(0),
                t["error_count"].as_u64().unwrap_or(0),
                t["stats"]["filter_rejected"].as_u64().unwrap_or(0),
                detail
            );
        }
        Ok(())
    }
}

impl Remote {
    /// Prints trigger `id`'s newest `limit` runs, one per line.
    pub async fn runs(&self, id: &str, limit: usize) -> Result<()> {
        let url = format!("{}/api/admin/triggers/{id}/runs", self.base);
        let runs = self
            .send(self.admin(self.http.get(url).query(&[("limit", limit)])))
            .await?;
        println!(
            "{:<26} {:<6} {:<9} {:>9}  EVENTS / ERROR",
            "INSTANT", "KIND", "OUTCOME", "MS"
        );
        for run in runs.as_array().into_iter().flatten() {
            let late = if run["catch_up"] == true {
                " (late)"
            } else {
                ""
            };
            let events: Vec<&str> = run["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let detail = run["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| events.join(" "));
            println!(
                "{:<26} {:<6} {:<9} {:>9.1}  {detail}{late}",
                run["instant"].as_str().unwrap_or("?"),
                run["kind"].as_str().unwrap_or("?"),
                run["outcome"].as_str().unwrap_or("?"),
                run["duration_ms"].as_f64().unwrap_or(0.0),
            );
        }
        Ok(())
    }
}

impl Remote {
    /// Prints the dead letters (of `trigger`, or all), one per line.
    pub async fn dead_letters(&self, trigger: Option<&str>) -> Result<()> {
        let url = format!("{}/api/admin/deadletters", self.base);
        let mut request = self.http.get(url);
        if let Some(trigger) = trigger {
            request = request.query(&[("trigger", trigger)]);
        }
        let letters = self.send(self.admin(request)).await?;
        println!(
            "{:<36} {:<20} {:<26} {:>8}  ERROR",
            "ID", "TRIGGER", "AT", "ATTEMPTS"
        );
        for letter in letters.as_array().into_iter().flatten() {
            println!(
                "{:<36} {:<20} {:<26} {:>8}  {}",
                letter["id"].as_str().unwrap_or("?"),
                letter["trigger"].as_str().unwrap_or("?"),
                letter["at"].as_str().unwrap_or("?"),
                letter["attempts"].as_u64().unwrap_or(0),
                letter["error"].as_str().unwrap_or(""),
            );
        }
        Ok(())
    }

    /// Adds a one-off timer publishing `data` on `topic` at `when` (an RFC
    /// 3339 instant, or a delay such as `90s`).
    pub async fn at(&self, when: &str, topic: &str, data: &str, id: Option<&str>) -> Result<()> {
        let data: Value = serde_json::from_str(data).context("DATA is not valid JSON")?;
        let mut body = serde_json::json!({ "topic": topic, "data": data });
        let key = match chrono::DateTime::parse_from_rfc3339(when) {
            Ok(_) => "at",
            Err(_) => "delay",
        };
        body[key] = Value::String(when.to_owned());
        if let Some(id) = id {
            body["id"] = Value::String(id.to_owned());
        }
        let url = format!("{}/api/admin/timers", self.base);
        let timer = self
            .send(self.admin(self.http.post(url).json(&body)))
            .await?;
        println!(
            "timer {} publishes on {topic} at {}",
            timer["id"].as_str().unwrap_or("?"),
            timer["due"].as_str().unwrap_or("?")
        );
        Ok(())
    }

    /// Starts a backfill of trigger `id` and follows it with a progress bar
    /// until it ends.
    pub async fn backfill(&self, id: &str, from: &str, to: &str, rate: f64) -> Result<()> {
        use std::io::Write;
        let url = format!("{}/api/admin/triggers/{id}/backfill", self.base);
        let body = serde_json::json!({ "from": from, "to": to, "rate": rate });
        self.send(self.admin(self.http.post(&url).json(&body)))
            .await?;
        loop {
            let progress = self.send(self.admin(self.http.get(&url))).await?;
            let (done, total) = (
                progress["done"].as_u64().unwrap_or(0),
                progress["total"].as_u64().unwrap_or(0),
            );
            let filled = (done * 30).checked_div(total).unwrap_or(30).min(30) as usize;
            print!(
                "\r[{}{}] {done}/{total}",
                "#".repeat(filled),
                ".".repeat(30 - filled)
            );
            let _ = std::io::stdout().flush();
            match progress["state"].as_str() {
                Some("running") => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                Some("done") => {
                    println!("  done");
                    return Ok(());
                }
                other => {
                    println!();
                    let why = progress["error"].as_str().unwrap_or("");
                    bail!("backfill {}: {why}", other.unwrap_or("?"));
                }
            }
        }
    }

    /// Replays dead letter `id`.
    pub async fn replay_dead_letter(&self, id: &str) -> Result<()> {
        let url = format!("{}/api/admin/deadletters/{id}/replay", self.base);
        let body = self.send(self.admin(self.http.post(url))).await?;
        println!(
            "replayed {id} through trigger {}",
            body["trigger"].as_str().unwrap_or("?")
        );
        Ok(())
    }

    /// Discards dead letter `id`.
    pub async fn discard_dead_letter(&self, id: &str) -> Result<()> {
        let url = format!("{}/api/admin/deadletters/{id}", self.base);
        self.send(self.admin(self.http.delete(url))).await?;
        println!("discarded {id}");
        Ok(())
    }
}

fn print_event(json: &str) {
    match serde_json::from_str::<Value>(json) {
        Ok(event) => println!(
            "{} {} {}",
            event["time"].as_str().unwrap_or(""),
            event["topic"].as_str().unwrap_or(""),
            event["data"]
        ),
        Err(_) => println!("{json}"),
    }
}
