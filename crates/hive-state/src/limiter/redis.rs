//! The shared limiter: one atomic Lua call per decision, timed by the Redis server's own clock
//! (`TIME`) so replicas with skewed clocks still agree.

use super::{Decision, Gcra, Policy, RateLimiter, micros};
use crate::{RedisClient, StateError};
use async_trait::async_trait;

/// The same step as [`Gcra::step`], in Lua. Returns {allowed, remaining, retry_after_us,
/// reset_after_us}. Lua numbers are doubles: microsecond timestamps fit exactly (< 2^53).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > window then
  return {0, 0, ahead - window, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(ahead / 1000))
return {1, math.floor((window - ahead) / interval), 0, ahead}
";

#[derive(Debug, Clone)]
pub struct RedisLimiter {
    redis: RedisClient,
    script: redis::Script,
}

impl RedisLimiter {
    pub fn new(redis: RedisClient) -> Self {
        Self {
            redis,
            script: redis::Script::new(SCRIPT),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, policy: &Policy, key: &str) -> Result<Decision, StateError> {
        let gcra = Gcra::new(policy.quota);
        let redis_key = self.redis.key(&["rl", policy.name, key]);
        let script = &self.script;
        let (allowed, remaining, retry_us, reset_us): (i64, i64, i64, i64) = self
            .redis
            .run(async |connection| {
                script
                    .key(&redis_key)
                    .arg(gcra.interval)
                    .arg(gcra.window)
                    .invoke_async(connection)
                    .await
            })
            .await?;
        Ok(Decision {
            allowed: allowed == 1,
            limit: gcra.limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
            retry_after: micros(retry_us),
            reset_after: micros(reset_us),
        })
    }
}
