//! The client-side rate limit of `clientConnection` (`qps`, `burst`): a token bucket, as
//! client-go's, shared by every request of one kind of traffic.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket refilled at `qps` tokens a second, holding at most `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket. A `qps` of zero or less means no limit (client-go's `-1`).
    pub fn new(qps: f64, burst: u32) -> RateLimiter {
        let burst = f64::from(burst.max(1));
        RateLimiter { qps, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        if self.qps <= 0.0 {
            return;
        }
        let wait = {
            let mut state = self.state.lock().await;
            let (tokens, last) = &mut *state;
            let now = Instant::now();
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.qps).min(self.burst);
            *last = now;
            *tokens -= 1.0;
            // A negative balance is a debt the caller sleeps off: later callers queue behind it.
            (*tokens < 0.0).then(|| Duration::from_secs_f64(-*tokens / self.qps))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_requests_are_paced() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1), "the burst is free");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        // Ten more at 10 qps take about a second (the paused clock advances only by sleeps).
        let paced = start.elapsed();
        assert!(paced >= Duration::from_millis(900) && paced <= Duration::from_millis(1100), "{paced:?}");
    }
}
