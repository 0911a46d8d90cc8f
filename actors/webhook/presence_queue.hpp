// PresenceQueue: the presence events one webhook has to POST (docs/WEBHOOKS.md), as a
// state machine with no sockets and no clock of its own, as Deliveries is for a room's
// messages. Presence is not stored: events wait in memory, in order, one request at a
// time, retried with backoff until the receiver takes them; past `max_held` the oldest
// waiting is dropped (counted). A node that stops or dies loses what it held.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "switchboard/actors/webhook/deliveries.hpp"

namespace switchboard::actors::webhook {

struct PresenceQueueOptions {
  std::size_t max_held = 10'000;  ///< events waiting at most; the oldest go first
  std::size_t max_batch = 1;      ///< events per request
  std::chrono::milliseconds retry_min{100}, retry_max{30'000};
};

class PresenceQueue {
 public:
  struct Event {
    std::string id, json;
  };

  explicit PresenceQueue(PresenceQueueOptions options = {}) : options_(options) {}

  /// One more event, after those held.
  void push(Event event);
  /// The events to POST now, in order, and marks them on their way; none: nothing held,
  /// a request on its way, or a retry not due yet (wake()).
  std::vector<Event> next(Clock::time_point now);
  /// The request next() gave was taken (a 2xx) or not (it goes again after a backoff).
  void posted(bool taken, Clock::time_point now);
  /// When next() has something to give that it did not have before (a retry due).
  std::optional<Clock::time_point> wake() const;

  std::uint64_t delivered() const noexcept { return delivered_; }
  std::uint64_t failures() const noexcept { return failures_; }
  std::uint64_t dropped() const noexcept { return dropped_; }
  std::size_t held() const noexcept { return held_.size(); }
  std::optional<Clock::time_point> failing_since() const noexcept { return failing_since_; }

 private:
  PresenceQueueOptions options_;
  std::deque<Event> held_;
  std::size_t in_post_ = 0;  ///< the first this many of held_ are on their way
  bool posting_ = false;
  std::uint32_t attempts_ = 0;
  std::optional<Clock::time_point> retry_at_, failing_since_;
  std::uint64_t delivered_ = 0, failures_ = 0, dropped_ = 0;
};

}  // namespace switchboard::actors::webhook
