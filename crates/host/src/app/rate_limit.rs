//! Rate limits: per api trigger (`rate_limit = "10/s"` on the trigger) and
//! per client address (`[server] rate_limit_per_client`). Past a limit a
//! request gets 429 with `Retry-After`, counted in `/metrics`.
//!
//! Limits are GCRA buckets (governor): `"10/s"` allows a burst of 10, then
//! one request every 100 ms. They are kept per replica, in memory: N
//! replicas behind a load balancer allow up to N times the rate.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use super::error::ApiError;
use wasmsched_core::units::Rate;

/// The limiters of one HTTP API, and how many requests each refused.
pub struct RateLimits {
    per_client: Option<(Rate, DefaultKeyedRateLimiter<IpAddr>)>,
    /// Per api trigger: its rate (a changed rate starts a new bucket) and bucket.
    per_trigger: Mutex<HashMap<String, (Rate, Arc<DefaultDirectRateLimiter>)>>,
    /// Refusals by scope: `trigger="id"` or `scope="client"`.
    refused: Mutex<BTreeMap<(&'static str, String), u64>>,
}

/// A request over a limit: 429 with `Retry-After` (whole seconds, at least 1).
#[derive(Debug)]
pub struct Limited {
    message: String,
    retry_after: Duration,
}

impl IntoResponse for Limited {
    fn into_response(self) -> Response {
        let seconds = self.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut response =
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, self.message).into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        response
    }
}

/// The key a client is limited by: its IPv4 address, or its IPv6 /64 (one
/// host usually holds a whole /64, so per-address keys would be dodged).
fn client_key(ip: IpAddr) -> IpAddr {
    // A dual-stack listener sees IPv4 clients as `::ffff:a.b.c.d`: each is
    // its own IPv4 client, not one /64 for every IPv4 client there is.
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn quota(rate: Rate) -> Quota {
    let interval = rate.per / rate.count.get();
    Quota::with_period(interval.max(Duration::from_nanos(1)))
        .expect("a rate's period is more than zero")
        .allow_burst(rate.count)
}

impl RateLimits {
    /// Limits with `per_client` for every client address (none: no limit).
    pub fn new(per_client: Option<Rate>) -> Self {
        Self {
            per_client: per_client.map(|rate| (rate, DefaultKeyedRateLimiter::keyed(quota(rate)))),
            per_trigger: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    /// Admits one request from `client`, or says when to retry.
    pub fn check_client(&self, client: IpAddr) -> Result<(), Limited> {
        let Some((rate, limiter)) = &self.per_client else {
            return Ok(());
        };
        limiter.check_key(&client_key(client)).map_err(|not_until| {
            self.count(("scope", "client".to_owned()));
            Limited {
                message: format!(
                    "too many requests from {client}: the limit is {rate} per client address \
                     ([server] rate_limit_per_client)"
                ),
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            }
        })
    }

    /// Admits one call of api trigger `id` limited to `rate`.
    pub fn check_trigger(&self, id: &str, rate: Rate) -> Result<(), Limited> {
        let limiter = {
            let mut buckets = self.per_trigger.lock().unwrap_or_else(|p| p.into_inner());
            let entry = buckets.entry(id.to_owned()).or_insert_with(|| {
                (
                    rate,
                    Arc::new(DefaultDirectRateLimiter::direct(quota(rate))),
                )
            });
            if entry.0 != rate {
                *entry = (
                    rate,
                    Arc::new(DefaultDirectRateLimiter::direct(quota(rate))),
                );
            }
            entry.1.clone()
        };
        limiter.check().map_err(|not_until| {
            self.count(("trigger", id.to_owned()));
            Limited {
                message: format!("trigger `{id}` is rate limited to {rate}"),
                retry_after: not_until.wait_time_from(limiter.clock().now()),
            }
        })
    }

    /// Forgets client addresses whose bucket is full again (memory stays
    /// bounded under many clients).
    pub fn forget_idle_clients(&self) {
        if let Some((_, limiter)) = &self.per_client {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    fn count(&self, labels: (&'static str, String)) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(labels)
            .or_default() += 1;
    }

    /// Requests refused so far, by label (`trigger` and its id, or
    /// `scope` and `client`).
    pub fn refused(&self) -> Vec<((&'static str, String), u64)> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_429_with_retry_after() {
        let limits = RateLimits::new(None);
        let rate: Rate = "2/min".parse().unwrap();
        assert!(limits.check_trigger("t", rate).is_ok());
        assert!(limits.check_trigger("t", rate).is_ok());
        let limited = limits.check_trigger("t", rate).unwrap_err();
        assert!(limited.retry_after > Duration::from_secs(20), "{limited:?}");
        // Another trigger has its own bucket.
        assert!(limits.check_trigger("u", rate).is_ok());
        assert_eq!(limits.refused(), vec![(("trigger", "t".to_owned()), 1)]);
        let response = limited.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            response.headers()[header::RETRY_AFTER]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 20
        );
    }

    #[test]
    fn clients_are_limited_each() {
        let limits = RateLimits::new(Some("1/h".parse().unwrap()));
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        assert!(limits.check_client(a).is_ok());
        assert!(limits.check_client(a).is_err());
        assert!(limits.check_client(b).is_ok());
        let (c, d): (IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert!(limits.check_client(c).is_ok());
        assert!(limits.check_client(d).is_err(), "the same /64");
        // Behind a dual-stack listener, IPv4 clients are still told apart.
        let (e, f): (IpAddr, IpAddr) = (
            "::ffff:10.0.0.1".parse().unwrap(),
            "::ffff:10.0.0.2".parse().unwrap(),
        );
        assert!(limits.check_client(e).is_ok());
        assert!(limits.check_client(f).is_ok(), "another IPv4 client");
        let g: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(
            limits.check_client(g).is_err(),
            "the same client, either way"
        );
    }
}
