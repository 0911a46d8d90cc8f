// Token buckets: how Switchboard limits the rate of what users send (docs/SECURITY.md).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace switchboard {

/// A sustained rate and a burst. `per_s` of 0 means no limit.
struct Rate {
  std::uint32_t per_s = 0;
  std::uint32_t burst = 0;  ///< tokens a full bucket holds (at least 1 when limited)
  bool limited() const noexcept { return per_s > 0; }
};

/// One token bucket: full at first, refilled at rate.per_s tokens a second up to
/// rate.burst. take() spends a token or says how long until one is there.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  /// 0 when a token was taken; else the wait until one will be there (nothing taken).
  std::chrono::milliseconds take(Rate rate, Clock::time_point now) {
    if (!rate.limited()) return std::chrono::milliseconds(0);
    const double burst = std::max<std::uint32_t>(rate.burst, 1);
    if (!started_) {
      started_ = true;
      tokens_ = burst;
    } else if (now > at_) {
      tokens_ = std::min(burst, tokens_ + std::chrono::duration<double>(now - at_).count() * rate.per_s);
    }
    at_ = std::max(at_, now);
    if (tokens_ >= 1.0) {
      tokens_ -= 1.0;
      return std::chrono::milliseconds(0);
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil((1.0 - tokens_) * 1000.0 / rate.per_s)));
  }
  /// Whether the bucket would be full at `now` (so forgetting it changes nothing).
  bool full(Rate rate, Clock::time_point now) const {
    const double burst = std::max<std::uint32_t>(rate.burst, 1);
    return !started_ || tokens_ + std::chrono::duration<double>(now - at_).count() * rate.per_s >= burst;
  }

 private:
  double tokens_ = 0;
  Clock::time_point at_{};
  bool started_ = false;
};

/// Token buckets by key (a user name), all at one rate. Buckets that have refilled are
/// forgotten now and then, so memory follows the keys that are active, not all seen.
class RateLimiter {
 public:
  explicit RateLimiter(Rate rate = {}) : rate_(rate) {}

  /// As TokenBucket::take, for `key`'s bucket.
  std::chrono::milliseconds take(std::string_view key, TokenBucket::Clock::time_point now) {
    if (!rate_.limited()) return std::chrono::milliseconds(0);
    if (buckets_.size() >= sweep_at_) sweep(now);
    auto it = buckets_.find(key);
    if (it == buckets_.end()) it = buckets_.emplace(std::string(key), TokenBucket{}).first;
    return it->second.take(rate_, now);
  }
  std::size_t size() const noexcept { return buckets_.size(); }

 private:
  struct Hash : std::hash<std::string_view> {
    using is_transparent = void;
  };
  void sweep(TokenBucket::Clock::time_point now) {
    std::erase_if(buckets_, [&](const auto& entry) { return entry.second.full(rate_, now); });
    sweep_at_ = std::max<std::size_t>(kMinSweep, 2 * buckets_.size());
  }
  static constexpr std::size_t kMinSweep = 1024;
  Rate rate_;
  std::unordered_map<std::string, TokenBucket, Hash, std::equal_to<>> buckets_;
  std::size_t sweep_at_ = kMinSweep;
};

}  // namespace switchboard
