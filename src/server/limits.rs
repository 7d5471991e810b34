//! Overload protection: a token bucket per client address, a global limit on requests served
//! at once with a bounded, time-limited wait queue, and time limits on the stages of a
//! streamed answer. Refusals are ordinary [`Error`]s, so they get their status, label and
//! `Retry-After` where every other error does (`error.rs`, `ApiError`).

use crate::config::ServerConfig;
use crate::error::Error;
use axum::extract::ConnectInfo;
use axum::http::Request;
use futures_util::Stream;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Buckets kept before full (idle) ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 10_000;

/// Seconds a client is told to wait when the server is at capacity or shutting down.
const OVERLOAD_RETRY_SECS: u64 = 5;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The shared limits of one server.
pub struct Limits {
    config: ServerConfig,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    draining: AtomicBool,
}

/// A request's place among those served at once; released when dropped (for a stream: when
/// the stream ends).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Decrements the wait count however the wait ends (granted, timed out, client gone).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limits {
    pub fn new(config: &ServerConfig) -> Self {
        let mut config = config.clone();
        if config.max_concurrent == 0 {
            // each answer already spreads its model work over every core: more at once only
            // adds memory and latency (measured in BENCHMARKS.md)
            config.max_concurrent = std::thread::available_parallelism().map_or(2, |n| n.get());
        }
        Limits {
            slots: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            config,
            buckets: Mutex::new(HashMap::new()),
            waiting: Arc::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> usize {
        self.config.max_concurrent.max(1) - self.slots.available_permits()
    }

    /// Requests waiting for a slot.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// From now on new requests are refused with 503 (the server is shutting down).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The client's address: the peer, or the first `X-Forwarded-For` hop when configured.
    pub fn client_of<B>(&self, req: &Request<B>) -> IpAddr {
        if self.config.trust_forwarded_for {
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
            if let Some(ip) = forwarded {
                return ip;
            }
        }
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// Takes one token from `client`'s bucket, or says how long until one is there.
    pub fn check_rate(&self, client: IpAddr, now: Instant) -> Result<(), Error> {
        let rate = self.config.rate_per_second;
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = self.config.rate_burst.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&client) {
            // a full bucket holds no information: forget those
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / rate).ceil() as u64;
        Err(Error::RateLimited {
            message: format!(
                "요청이 너무 많습니다. {wait}초 후에 다시 시도해 주세요. (too many requests from this client: at most {rate} per second)"
            ),
            retry_after_secs: wait.max(1),
        })
    }

    /// A slot to serve one request: at once when one is free, else after waiting in the
    /// bounded queue; 503 when the queue is full, the wait too long, or the server draining.
    pub async fn acquire(&self) -> Result<Slot, Error> {
        if self.is_draining() {
            return Err(overloaded(
                "서버가 종료 중입니다 (the server is shutting down)",
            ));
        }
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(Slot { _permit: permit });
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.config.max_queued {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(overloaded(
                "지금은 요청이 많아 처리할 수 없습니다 (the server is at capacity and its queue is full)",
            ));
        }
        let _waiting = Waiting(self.waiting.clone());
        let wait = Duration::from_secs_f64(self.config.queue_timeout_secs.max(0.0));
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot { _permit: permit }),
            _ => Err(overloaded(
                "지금은 요청이 많아 처리할 수 없습니다 (no slot became free in time)",
            )),
        }
    }

    /// The time limits of one streamed request, starting now.
    pub fn stages(&self) -> Stages {
        let c = &self.config;
        let secs = |s: f64| Duration::from_secs_f64(s.max(0.001));
        Stages {
            start: Instant::now(),
            first: secs(c.retrieval_timeout_secs),
            total: secs(c.generation_timeout_secs),
            idle: secs(c.sse_idle_timeout_secs),
        }
    }

    /// 422 when a question breaks the length limit.
    pub fn check_question(&self, question: &str) -> Result<(), Error> {
        let chars = question.chars().count();
        let max = self.config.max_question_chars;
        if chars > max {
            return Err(Error::LimitExceeded(format!(
                "질문이 너무 깁니다: {chars}자 (최대 {max}자). 질문을 줄여 주세요. (the question has {chars} characters; the limit is {max})"
            )));
        }
        Ok(())
    }

    /// 422 when a conversation has too many turns or characters altogether.
    pub fn check_conversation(&self, turns: usize, chars: usize) -> Result<(), Error> {
        let (max_turns, max_chars) = (self.config.max_turns, self.config.max_conversation_chars);
        if turns > max_turns {
            return Err(Error::LimitExceeded(format!(
                "대화가 너무 깁니다: {turns}개 (최대 {max_turns}개). 새 대화를 시작해 주세요. (the conversation has {turns} turns; the limit is {max_turns})"
            )));
        }
        if chars > max_chars {
            return Err(Error::LimitExceeded(format!(
                "대화가 너무 깁니다: {chars}자 (최대 {max_chars}자). 새 대화를 시작해 주세요. (the conversation has {chars} characters; the limit is {max_chars})"
            )));
        }
        Ok(())
    }
}

fn overloaded(message: &str) -> Error {
    Error::Overloaded {
        message: message.to_string(),
        retry_after_secs: OVERLOAD_RETRY_SECS,
    }
}

/// The time limits of one request: until its first item, between items, and in all.
#[derive(Debug, Clone, Copy)]
pub struct Stages {
    start: Instant,
    first: Duration,
    total: Duration,
    idle: Duration,
}

impl Stages {
    fn left(&self) -> Duration {
        self.total.saturating_sub(self.start.elapsed())
    }

    /// The worker's first item (retrieval, or the model's queue and first token), in time.
    pub async fn first<T>(&self, rx: &mut mpsc::Receiver<T>) -> Result<Option<T>, Error> {
        let limit = self.first.min(self.left());
        tokio::time::timeout(limit, rx.recv()).await.map_err(|_| {
            Error::Timeout(format!(
                "no answer started within {:.0} s (retrieval_timeout_secs)",
                limit.as_secs_f64()
            ))
        })
    }

    /// The next item of a whole (non-streamed) result, within the total limit.
    pub async fn next<T>(&self, rx: &mut mpsc::Receiver<T>) -> Result<Option<T>, Error> {
        tokio::time::timeout(self.left(), rx.recv())
            .await
            .map_err(|_| self.total_error())
    }

    /// `work` (a whole, unstreamed task) within the total limit.
    pub async fn whole<F: std::future::Future>(&self, work: F) -> Result<F::Output, Error> {
        tokio::time::timeout(self.left(), work)
            .await
            .map_err(|_| self.total_error())
    }

    fn total_error(&self) -> Error {
        Error::Timeout(format!(
            "the answer took longer than {:.0} s (generation_timeout_secs)",
            self.total.as_secs_f64()
        ))
    }

    /// The rest of a stream: each item within the idle limit and all within the total; a
    /// stage running late ends the stream with one `Err`, and dropping the receiver cancels
    /// the worker (its sends fail).
    pub fn stream<T: Send + 'static>(
        self,
        rx: mpsc::Receiver<T>,
    ) -> impl Stream<Item = Result<T, Error>> + Send {
        futures_util::stream::unfold(Some(rx), move |rx| async move {
            let mut rx = rx?;
            let left = self.left();
            let wait = self.idle.min(left);
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(item)) => Some((Ok(item), Some(rx))),
                Ok(None) => None,
                Err(_) if wait < self.idle => Some((Err(self.total_error()), None)),
                Err(_) => Some((
                    Err(Error::Timeout(format!(
                        "the stream was silent for {:.0} s (sse_idle_timeout_secs)",
                        self.idle.as_secs_f64()
                    ))),
                    None,
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn limits(f: impl FnOnce(&mut ServerConfig)) -> Limits {
        let mut c = ServerConfig::default();
        f(&mut c);
        Limits::new(&c)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let l = limits(|c| {
            c.rate_per_second = 2.0;
            c.rate_burst = 3.0;
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_rate(a, t0).unwrap();
        }
        let err = l.check_rate(a, t0).unwrap_err();
        assert_eq!(err.http_status(), 429);
        assert_eq!(err.retry_after_secs(), Some(1));
        assert!(err.to_string().contains("요청이 너무 많습니다"), "{err}");
        // another client is not affected
        l.check_rate(b, t0).unwrap();
        // half a second at 2/s gives one token back, and only one
        let t1 = t0 + Duration::from_millis(500);
        l.check_rate(a, t1).unwrap();
        assert!(l.check_rate(a, t1).is_err());
        // a zero rate turns the limit off
        let off = limits(|c| c.rate_per_second = 0.0);
        for _ in 0..1000 {
            off.check_rate(a, t0).unwrap();
        }
    }

    #[test]
    fn tracked_clients_stay_bounded() {
        let l = limits(|c| {
            c.rate_per_second = 1000.0;
            c.rate_burst = 1.0;
        });
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED_CLIENTS as u32 + 50) {
            let ip = IpAddr::V4(Ipv4Addr::from(i));
            l.check_rate(ip, t0 + Duration::from_millis(i as u64 / 10))
                .unwrap();
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_TRACKED_CLIENTS);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_waits_time_out() {
        let l = Arc::new(limits(|c| {
            c.max_concurrent = 2;
            c.max_queued = 1;
            c.queue_timeout_secs = 0.2;
        }));
        let a = l.acquire().await.unwrap();
        let _b = l.acquire().await.unwrap();
        assert_eq!(l.in_flight(), 2);
        // the third waits in the queue; a fourth finds the queue full at once
        let waiter = tokio::spawn({
            let l = l.clone();
            async move { l.acquire().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(l.queued(), 1);
        let full = l.acquire().await.err().expect("queue full");
        assert_eq!(full.http_status(), 503);
        assert!(full.retry_after_secs().is_some());
        drop(a);
        waiter
            .await
            .unwrap()
            .expect("the waiter gets the freed slot");
        assert_eq!(l.queued(), 0);
        // nobody frees a slot: the wait times out with 503
        let _c = l.acquire().await.unwrap();
        let slow = l.acquire().await.err().expect("timed out");
        assert_eq!(slow.http_status(), 503);
        assert_eq!(l.queued(), 0);
        l.start_draining();
        drop(_c);
        assert_eq!(l.acquire().await.err().unwrap().http_status(), 503);
    }

    #[test]
    fn length_limits_say_so_in_korean() {
        let l = limits(|c| {
            c.max_question_chars = 5;
            c.max_turns = 2;
            c.max_conversation_chars = 10;
        });
        l.check_question("다섯글자요").unwrap();
        let e = l.check_question("여섯글자예요").unwrap_err();
        assert_eq!(e.http_status(), 422);
        assert!(e.to_string().contains("질문이 너무 깁니다"), "{e}");
        l.check_conversation(2, 10).unwrap();
        assert_eq!(l.check_conversation(3, 1).unwrap_err().http_status(), 422);
        assert!(l
            .check_conversation(1, 11)
            .unwrap_err()
            .to_string()
            .contains("대화가 너무 깁니다"));
    }

    #[tokio::test]
    async fn stages_end_silent_and_overlong_streams() {
        let l = limits(|c| {
            c.retrieval_timeout_secs = 0.1;
            c.sse_idle_timeout_secs = 0.1;
            c.generation_timeout_secs = 10.0;
        });
        // nothing ever arrives: the first stage times out
        let (_tx, mut rx) = mpsc::channel::<u32>(4);
        let e = l.stages().first(&mut rx).await.unwrap_err();
        assert_eq!(e.http_status(), 504);
        // items then silence: the stream yields them, then one idle error, then ends
        let (tx, rx) = mpsc::channel::<u32>(4);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let items: Vec<_> = l.stages().stream(rx).collect().await;
        assert_eq!(items.len(), 3);
        assert!(matches!(items[0], Ok(1)));
        assert!(items[2]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("silent"));
        // the receiver was dropped: the worker's sends now fail, which cancels it
        assert!(tx.send(3).await.is_err());
        // a steady stream past the total limit is cut with the total error
        let l = limits(|c| {
            c.sse_idle_timeout_secs = 1.0;
            c.generation_timeout_secs = 0.3;
        });
        let (tx, rx) = mpsc::channel::<u32>(4);
        tokio::spawn(async move {
            for i in 0.. {
                if tx.send(i).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let items: Vec<_> = l.stages().stream(rx).collect().await;
        let last = items.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(last.contains("generation_timeout_secs"), "{last}");
        // a stream that ends by itself ends without an error
        let (tx, rx) = mpsc::channel::<u32>(4);
        tx.send(7).await.unwrap();
        drop(tx);
        let items: Vec<_> = l.stages().stream(rx).collect().await;
        assert_eq!(items.len(), 1);
    }
}
