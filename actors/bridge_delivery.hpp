// RoomDelivery: the bridge's in-order, exactly-once delivery of room messages to many
// WebSocket connections, each resuming from its own last seq.
//
// No sockets and no clock of its own: the bridge feeds it what arrives (live
// messages from the node's PUB, history pages, last_seq answers) and carries out
// what it asks for (deliver these frames to these connections, fetch this history
// page, ask this room's last seq). Gaps are repaired from history as in
// docs/PROTOCOL.md section 5; one history page serves every connection it overlaps,
// and fetches with the same start are asked once.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace switchboard::actors {

using ConnId = std::uint64_t;

/// A room message, encoded once for every connection it goes to: JSON text and
/// msgpack (docs/PROTOCOL.md section 10).
struct OutFrame {
  std::string text;
  std::string binary;
};
using SharedFrame = std::shared_ptr<const OutFrame>;

struct SeqFrame {
  std::uint64_t seq = 0;
  SharedFrame frame;
};

/// What RoomDelivery asks of the bridge; filled by its calls, emptied by the bridge.
struct DeliveryActions {
  struct Deliver {
    SharedFrame frame;
    std::vector<ConnId> to;
  };
  struct Fetch {
    std::string room;
    std::uint64_t after = 0;  ///< history with after = this
    std::uint32_t limit = 0;
  };
  std::vector<Deliver> deliver;        ///< in this order
  std::vector<Fetch> fetch;            ///< history pages to ask for
  std::vector<std::string> last_seq;   ///< rooms whose last seq to ask for
};

class RoomDelivery {
 public:
  using Clock = std::chrono::steady_clock;

  /// `page`: messages asked per history fetch. `quiet`: a room with no live message
  /// for this long after one arrived gets its last seq asked once (the tail of a burst
  /// the PUB dropped has nothing after it to show the gap).
  /// How many more messages a connection can take now (its send queue's free room);
  /// 0 pauses its catch-up until resume().
  using Budget = std::function<std::size_t(ConnId)>;

  /// `page`: messages asked per history fetch, at most. `quiet`: a room with no live
  /// message for this long after one arrived gets its last seq asked once (the tail of
  /// a burst the PUB dropped has nothing after it to show the gap). `budget`: none
  /// means every connection can always take a page.
  explicit RoomDelivery(std::uint32_t page = 500, std::chrono::milliseconds quiet = std::chrono::milliseconds(250),
                        Budget budget = {})
      : page_(page), quiet_(quiet), budget_(std::move(budget)) {}

  /// A subscription to `room` is under way (its last seq was asked): live messages of
  /// the room are noted from now on. Returns true if the room is new to the bridge
  /// (subscribe the PUB topic).
  bool expect(const std::string& room);
  /// The subscription that expect() announced failed. Returns true if the room has
  /// nobody left (unsubscribe the PUB topic).
  bool cancel(const std::string& room);
  /// Completes an expect(): `conn` follows `room`, getting every message with seq >
  /// `after`, in order, once. `last_seq` is the room's newest seq as the node just
  /// said. Follows again from `after` if it already followed the room.
  void follow(ConnId conn, const std::string& room, std::uint64_t after, std::uint64_t last_seq);
  /// Returns true if the room has nobody left (unsubscribe the PUB topic).
  bool unfollow(ConnId conn, const std::string& room);

  /// A message that arrived on the PUB.
  void on_live(const std::string& room, const SeqFrame& message, Clock::time_point now, DeliveryActions& out);
  /// The answer to a fetch: `messages` in ascending, gapless seq order, `more` as the
  /// node said. `failed`: the fetch got an error (it is asked again by the next
  /// message or quiet check).
  void on_history(const std::string& room, std::uint64_t after, const std::vector<SeqFrame>& messages, bool more,
                  DeliveryActions& out);
  void on_fetch_failed(const std::string& room, std::uint64_t after);
  /// The answer to a last_seq ask.
  void on_last_seq(const std::string& room, std::uint64_t seq);
  void on_last_seq_failed(const std::string& room);
  /// A connection whose budget was 0 can take messages again: its catch-up in `room`
  /// carries on.
  void resume(const std::string& room);
  /// The history fetches now due: for every follower that is behind, waits for no
  /// fetch and has budget. Call after handing over the deliveries of the calls above
  /// (so that the budget counts them).
  void plan(DeliveryActions& out);
  /// Asks the quiet rooms' last seq.
  void tick(Clock::time_point now, DeliveryActions& out);

  /// The next seq `conn` will get in `room` (0 if it does not follow it).
  std::uint64_t next(ConnId conn, const std::string& room) const;
  std::size_t rooms() const noexcept { return rooms_.size(); }

 private:
  struct Follower {
    std::uint64_t next = 1;
    std::optional<std::uint64_t> waiting;  ///< the fetch (its `after`) it waits for
  };
  struct Room {
    std::map<ConnId, Follower> followers;
    int expected = 0;            ///< subscriptions under way
    std::uint64_t latest = 0;    ///< the highest seq known to be stored
    std::set<std::uint64_t> fetching;  ///< `after` of the fetches in flight
    bool asking_last_seq = false;
    bool check_due = false;      ///< a live message came; ask last_seq once it is quiet
    Clock::time_point last_live{};
  };

  /// Fetches for every follower of the room that is behind and waits for nothing.
  void catch_up(const std::string& name, Room& room, DeliveryActions& out);
  /// Hands `m` to every follower whose next it is.
  static void deliver(const SeqFrame& m, Room& room, DeliveryActions& out);
  bool remove_if_empty(const std::string& room);

  std::uint32_t page_;
  std::chrono::milliseconds quiet_;
  Budget budget_;
  std::map<std::string, Room> rooms_;
  std::set<std::string> dirty_;  ///< rooms whose followers plan() looks at
};

}  // namespace switchboard::actors
