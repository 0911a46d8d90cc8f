#include "switchboard/actors/webhook/deliveries.hpp"

#include <algorithm>

#include "switchboard/actors/chat/room_events.hpp"
#include "switchboard/actors/grants.hpp"
#include "switchboard/common/event_rooms.hpp"

namespace switchboard::actors::webhook {

Deliveries::Room& Deliveries::room(const std::string& name) {
  touched_.insert(name);
  Room& r = rooms_[name];
  r.touched_at = last_now_;
  return r;
}

void Deliveries::sweep(Clock::time_point now) {
  sweep_at_ = now + options_.forget_after;
  for (auto it = rooms_.begin(); it != rooms_.end();) {
    const Room& r = it->second;
    const bool owed = !r.known || r.asked || r.fetching || r.posting || !r.held.empty() || r.next <= r.last ||
                      r.stored + 1 < r.next || r.attempts > 0;
    if (!owed && r.touched_at + options_.forget_after <= now) it = rooms_.erase(it);
    else ++it;
  }
}

bool Deliveries::covers(const std::string& name) const {
  return webhook::covers(options_.rooms, options_.messages, options_.membership || options_.room, name);
}

bool Deliveries::takes(const std::string& name, const transport::RoomMessage& event) const {
  const bool everyone = options_.users.size() == 1 && options_.users.front() == "*";
  if (!is_events_room(name)) return everyone || room_matches(options_.users, event.user);
  const std::string_view type = room_event_type(event.body);
  if (type == "room") return options_.room;
  if (type != "membership" || !options_.membership) return false;
  return everyone || room_matches(options_.users, room_event_user(event.body));
}

void Deliveries::committed(const std::string& name, std::uint64_t seq) {
  if (!covers(name)) return;
  Room& r = room(name);
  r.last = std::max(r.last, seq);
}

void Deliveries::backlog(const Backlog& backlog) {
  for (const auto& row : backlog.rows) {
    if (!covers(row.room)) continue;
    Room& r = room(row.room);
    r.asked = false;
    r.last = std::max(r.last, row.last);
    if (!r.known) {
      r.known = true;
      r.next = row.cursor + 1;
      r.stored = row.cursor;
    } else if (row.cursor + 1 > r.next && r.held.empty() && !r.fetching && !r.posting) {
      // Another node delivered further (this one was not the room's primary meanwhile).
      r.next = row.cursor + 1;
      r.stored = row.cursor;
    }
  }
  if (!backlog.room.empty()) {
    // One room's row: none means chat does not write that room here (gone, or its
    // shard's primary is another node): nothing of it is delivered from here.
    if (backlog.rows.empty())
      if (auto it = rooms_.find(backlog.room); it != rooms_.end() && !it->second.known) rooms_.erase(it);
    return;
  }
  // A scan's page: go on after it at once, or start over at the next interval.
  backlog_asked_ = false;
  if (backlog.more && !backlog.rows.empty()) {
    backlog_after_ = backlog.rows.back().room;
    backlog_at_.reset();
  } else {
    backlog_after_.clear();
  }
}

void Deliveries::pass_over_filtered(const std::string& name, Room& r) {
  while (!r.held.empty() && !takes(name, r.held.front())) {
    r.next = r.held.front().seq + 1;
    r.held.pop_front();
    --held_;
  }
}

void Deliveries::page(const std::string& name, std::vector<transport::RoomMessage> messages, std::uint64_t first_seq,
                      Clock::time_point now) {
  Room& r = room(name);
  if (r.held.empty()) {
    r.held_since = now;
    r.gap = false;
  }
  if (r.fetching) --fetching_;
  r.fetching = false;
  if (first_seq > r.next && r.held.empty()) {  // trimmed before it was delivered
    skipped_ += first_seq - r.next;
    r.next = first_seq;
  }
  for (auto& m : messages) {
    if (m.seq < r.next + r.held.size()) continue;  // had already
    if (m.seq > r.next + r.held.size()) {  // a gap in the page: trimmed meanwhile
      if (!r.held.empty()) {               // deliver what is held first
        r.gap = true;
        break;
      }
      skipped_ += m.seq - r.next;
      r.next = m.seq;
    }
    r.last = std::max(r.last, m.seq);
    r.held.push_back(std::move(m));
    ++held_;
  }
  pass_over_filtered(name, r);
}

void Deliveries::page_failed(const std::string& name, Clock::time_point now) {
  Room& r = room(name);
  if (r.fetching) --fetching_;
  r.fetching = false;
  r.retry_at = now + options_.retry_min;
}

void Deliveries::posted(const std::string& name, bool taken, Clock::time_point now) {
  Room& r = room(name);
  if (!r.posting) return;
  r.posting = false;
  --posting_;
  up_ = taken;
  if (!taken) {
    ++failures_;
    ++r.attempts;
    if (!r.failing_since) r.failing_since = now;
    r.retry_at = backoff(r.attempts, now);
    return;
  }
  r.attempts = 0;
  r.failing_since.reset();
  for (std::size_t i = 0; i < r.in_post && !r.held.empty(); ++i) {
    r.next = r.held.front().seq + 1;
    r.held.pop_front();
    --held_;
    ++delivered_;
  }
  r.in_post = 0;
  pass_over_filtered(name, r);
}

Clock::time_point Deliveries::backoff(std::uint32_t attempts, Clock::time_point now) const {
  auto wait = options_.retry_min;
  for (std::uint32_t i = 1; i < attempts && wait < options_.retry_max; ++i) wait *= 2;
  return now + std::min(wait, options_.retry_max);
}

void Deliveries::act(const std::string& name, Room& r, Clock::time_point now, std::vector<Action>& out) {
  if (!r.known) {
    if (!r.asked) {
      r.asked = true;
      out.push_back(AskBacklog{{}, name});
    }
    return;
  }
  if (r.retry_at > now) {
    timers_.emplace(r.retry_at, name);
  } else {
    // Read more while less than a page is held and the room has more.
    const std::uint64_t unread = r.next + r.held.size();
    if (!r.fetching && r.held.size() < options_.page && unread <= r.last && (!r.gap || r.held.empty())) {
      // What is held and what the pages on their way may bring stays within max_held.
      if (held_ + (fetching_ + 1) * options_.page <= options_.max_held) {
        r.fetching = true;
        ++fetching_;
        out.push_back(Fetch{name, unread - 1, options_.page - r.held.size()});
      } else {
        want_.insert(name);
      }
    }
    const bool gathering = options_.window.count() > 0 && r.held.size() < options_.max_batch &&
                           now < r.held_since + options_.window;
    if (!r.posting && !r.held.empty() && gathering) timers_.emplace(r.held_since + options_.window, name);
    if (!r.posting && !r.held.empty() && !gathering) {
      if (posting_ < options_.connections) {
        Post post{name, {}};
        const std::size_t n = std::min(options_.max_batch, r.held.size());
        post.events.assign(r.held.begin(), r.held.begin() + static_cast<std::ptrdiff_t>(n));
        r.posting = true;
        r.in_post = n;
        ++posting_;
        out.push_back(std::move(post));
      } else {
        want_.insert(name);
      }
    }
  }
  // The cursor: stored once the receiver is past it, at most every cursor_interval.
  if (r.next - 1 > r.stored) {
    if (r.cursor_at + options_.cursor_interval <= now) {
      r.stored = r.next - 1;
      r.cursor_at = now;
      out.push_back(StoreCursor{name, r.stored});
    } else {
      timers_.emplace(r.cursor_at + options_.cursor_interval, name);
    }
  }
}

std::vector<Deliveries::Action> Deliveries::actions(Clock::time_point now) {
  std::vector<Action> out;
  last_now_ = now;
  if (sweep_at_ == Clock::time_point{}) sweep_at_ = now + options_.forget_after;
  if (now >= sweep_at_) sweep(now);
  if (!backlog_asked_ && (!backlog_at_ || *backlog_at_ <= now)) {
    backlog_asked_ = true;
    out.push_back(AskBacklog{backlog_after_, {}});
    backlog_at_ = now + options_.backlog_interval;
  }
  std::set<std::string, std::less<>> look = std::move(touched_);
  touched_.clear();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    look.insert(std::move(timers_.begin()->second));
    timers_.erase(timers_.begin());
  }
  if (posting_ < options_.connections || held_ + (fetching_ + 1) * options_.page <= options_.max_held) {
    look.merge(want_);
    want_.clear();
  }
  for (const auto& name : look)
    if (auto it = rooms_.find(name); it != rooms_.end()) act(name, it->second, now, out);
  wake_ = backlog_at_.value_or(now);
  if (!timers_.empty()) wake_ = std::min(wake_, timers_.begin()->first);
  return out;
}

Stats Deliveries::stats() const {
  Stats s;
  s.delivered = delivered_;
  s.failures = failures_;
  s.skipped = skipped_;
  s.up = up_;
  for (const auto& [name, r] : rooms_) {
    if (r.known && r.last >= r.next) s.pending += r.last - r.next + 1;
    if (r.failing_since && (!s.failing_since || *r.failing_since < *s.failing_since)) s.failing_since = r.failing_since;
  }
  return s;
}

}  // namespace switchboard::actors::webhook
