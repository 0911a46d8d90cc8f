// Deliveries: what one webhook owes its receiver, as a state machine with no sockets
// and no clock of its own (docs/WEBHOOKS.md). The webhook sender (webhook_sender.hpp)
// feeds it what chat says and what the receiver answered, and carries out the actions
// it asks for: read a page of a room's history, POST events, store a cursor, ask chat
// which rooms are behind.
//
// Per room, events go out in seq order, one request at a time: the next waits until
// the receiver took the one before (a 2xx), retried with backoff until it does. Rooms
// go side by side, up to `connections` requests at once. The cursor (the last seq the
// receiver took) is stored through chat at most every `cursor_interval` per room; after
// a restart or a failover delivery goes on from the stored cursor, so an event may come
// twice (its id is the same) and none is skipped, except what retention trimmed before
// it was delivered (counted in `skipped`).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "switchboard/actors/webhook/webhook_frames.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors::webhook {

using Clock = std::chrono::steady_clock;

struct DeliveryOptions {
  std::string name;
  /// Rooms covered: names, or prefixes ending in '*' ("*": every room).
  std::vector<std::string> rooms{"*"};
  /// Senders whose messages are delivered ("*": everyone's), and the users whose
  /// membership events are. Others' are passed over.
  std::vector<std::string> users{"*"};
  /// Whether rooms' messages are delivered.
  bool messages = true;
  /// Whether membership and room events are (from the rooms' events logs, common/event_rooms.hpp).
  bool membership = false, room = false;
  std::size_t connections = 4;     ///< requests at once (each room one at a time)
  std::size_t max_batch = 1;       ///< events per request; 1: the body is the event itself
  std::size_t page = 200;          ///< events read from history at once per room
  std::size_t max_held = 20'000;   ///< events held in memory at most, all rooms together
  std::chrono::milliseconds cursor_interval{200};
  std::chrono::milliseconds backlog_interval{1000};
  /// Rooms with nothing owed and their cursor stored are forgotten when idle this long
  /// (their next event asks chat for the cursor again): memory stays with the busy rooms.
  std::chrono::milliseconds forget_after{60'000};
  std::chrono::milliseconds retry_min{100}, retry_max{30'000};
  /// Events of a room wait this long after the first of them was read before they go,
  /// unless max_batch of them are held (notifications gather a burst into one); 0: none.
  std::chrono::milliseconds window{0};
};

struct Stats {
  std::uint64_t delivered = 0;  ///< events the receiver took
  std::uint64_t failures = 0;   ///< requests that failed (each retried)
  std::uint64_t skipped = 0;    ///< trimmed by retention before they were delivered
  std::uint64_t pending = 0;    ///< events stored and not delivered yet (rooms known here)
  bool up = true;               ///< the last request was taken
  /// When the oldest request still failing first failed (none: nothing failing).
  std::optional<Clock::time_point> failing_since;
};

class Deliveries {
 public:
  /// Read `limit` messages of `room` after `after` (a history request).
  struct Fetch { std::string room; std::uint64_t after = 0; std::size_t limit = 0; };
  /// POST these events of `room` (in order; consecutive in what is delivered).
  struct Post { std::string room; std::vector<transport::RoomMessage> events; };
  /// Store the webhook's cursor in `room`.
  struct StoreCursor { std::string room; std::uint64_t seq = 0; };
  /// Ask chat which rooms are behind: `room` set, that room's row only; else the rooms
  /// after `after`.
  struct AskBacklog { std::string after, room; };
  using Action = std::variant<Fetch, Post, StoreCursor, AskBacklog>;

  explicit Deliveries(DeliveryOptions options) : options_(std::move(options)) {}
  const DeliveryOptions& options() const noexcept { return options_; }

  // ---- what happened ----
  void committed(const std::string& room, std::uint64_t seq);
  void backlog(const Backlog& backlog);
  /// A history page for the room's Fetch: its messages, and the room's first seq when
  /// the page says messages before it were trimmed (0: none were).
  void page(const std::string& room, std::vector<transport::RoomMessage> messages, std::uint64_t first_seq,
            Clock::time_point now);
  /// The Fetch got an error (the room is gone, or the node is busy): tried again later.
  void page_failed(const std::string& room, Clock::time_point now);
  /// The room's Post was taken (a 2xx) or not.
  void posted(const std::string& room, bool taken, Clock::time_point now);

  /// What to do now; call after every input and at `next_wake()` at the latest.
  std::vector<Action> actions(Clock::time_point now);
  Clock::time_point next_wake() const noexcept { return wake_; }

  Stats stats() const;
  /// Rooms held in memory (known or being asked about).
  std::size_t rooms_held() const noexcept { return rooms_.size(); }

 private:
  struct Room {
    bool known = false;          ///< its cursor came from chat
    std::uint64_t next = 1;      ///< the next seq to deliver
    std::uint64_t last = 0;      ///< the newest durable seq heard of
    std::uint64_t stored = 0;    ///< the cursor last sent to chat
    Clock::time_point cursor_at{};  ///< when it was sent
    bool asked = false;          ///< its row asked for, not answered yet
    bool fetching = false, posting = false;
    std::size_t in_post = 0;     ///< events of the Post in flight
    std::deque<transport::RoomMessage> held;  ///< read, not delivered yet: next, next + 1, ...
    Clock::time_point held_since{};           ///< when `held` last became non-empty
    bool gap = false;  ///< a page showed trimmed messages past `held`: read on once it is delivered
    std::uint32_t attempts = 0;
    Clock::time_point retry_at{};
    std::optional<Clock::time_point> failing_since;
    Clock::time_point touched_at{};  ///< the last input about it
  };
  Room& room(const std::string& name);  ///< and touched
  /// Forgets the rooms idle past forget_after with nothing owed (walks them all: done
  /// once per forget_after).
  void sweep(Clock::time_point now);
  /// Whether this webhook takes what `name` (a room, or a room's events log) holds.
  bool covers(const std::string& name) const;
  /// Whether it takes the held `event` of `name` (its sender, its kind).
  bool takes(const std::string& name, const transport::RoomMessage& event) const;
  void act(const std::string& name, Room& r, Clock::time_point now, std::vector<Action>& out);
  void pass_over_filtered(const std::string& name, Room& r);
  Clock::time_point backoff(std::uint32_t attempts, Clock::time_point now) const;

  DeliveryOptions options_;
  std::map<std::string, Room, std::less<>> rooms_;
  // Rooms to look at in the next actions(): changed by an input, due by a timer, or
  // waiting for a free connection or room in memory. Only these are looked at, so a
  // node with many quiet rooms costs nothing per event.
  std::set<std::string, std::less<>> touched_, want_;
  std::multimap<Clock::time_point, std::string> timers_;
  std::size_t held_ = 0, posting_ = 0;
  std::size_t fetching_ = 0;  ///< Fetches on their way: each may bring a page
  bool backlog_asked_ = false;
  Clock::time_point sweep_at_{};  ///< when idle rooms are next looked for
  Clock::time_point last_now_{};  ///< the `now` of the last actions()
  std::optional<Clock::time_point> backlog_at_;  ///< when the next scan is due (none: at once)
  std::string backlog_after_;
  Clock::time_point wake_{};
  std::uint64_t delivered_ = 0, failures_ = 0, skipped_ = 0;
  bool up_ = true;
};

}  // namespace switchboard::actors::webhook
