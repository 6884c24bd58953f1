//! Decisions per second of the memory and Redis limiters.
//!
//! `cargo bench -p hive-state --bench limiter` (Redis part when `HIVE_TEST_REDIS_URL` is set).
//! Prints numbers; asserts nothing. Results go to docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hive_proto::SystemClock;
use hive_state::{MemoryLimiter, Policies, RateLimiter, RedisClient, RedisLimiter};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn measure(name: &str, limiter: Arc<dyn RateLimiter>, tasks: usize, per_task: usize) {
    let mut policy = Policies::default().get("api").unwrap().clone();
    policy.quota.limit = 1_000_000;
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let limiter = limiter.clone();
            let policy = policy.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for i in 0..per_task {
                    let key = format!("k{t}-{}", i % 1000);
                    let one = Instant::now();
                    limiter.check(&policy, &key).await.unwrap();
                    latencies.push(one.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let total = latencies.len();
    let p50 = latencies[total / 2];
    let p99 = latencies[total * 99 / 100];
    println!(
        "{name:<32} {:>10.0} decisions/s   p50 {:>8.1} µs   p99 {:>8.1} µs   ({total} decisions, {tasks} tasks)",
        total as f64 / elapsed.as_secs_f64(),
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
    );
}

#[tokio::main]
async fn main() {
    let memory = Arc::new(MemoryLimiter::new(Arc::new(SystemClock), 1_000_000));
    measure("memory, 1 task", memory.clone(), 1, 500_000).await;
    measure("memory, 8 tasks", memory, 8, 200_000).await;
    match std::env::var("HIVE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("hive-bench-{}", std::process::id());
            let redis = Arc::new(RedisLimiter::new(RedisClient::new(&url, &prefix).unwrap()));
            measure("redis, 1 task (one round trip)", redis.clone(), 1, 20_000).await;
            measure("redis, 32 tasks (pipelined)", redis, 32, 5_000).await;
        }
        _ => println!("redis: skipped (HIVE_TEST_REDIS_URL is not set)"),
    }
}
