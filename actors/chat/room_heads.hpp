// RoomHeads: what a node's heads events say (docs/PROTOCOL.md section 5.2).
//
// A subscriber learns of a gap in a room's live stream from the next message of the
// room; the tail of a burst dropped at a high-water mark has no next message. Heads
// events close that hole at a cost per node, not per room: every `interval` in which
// the node published, one event names the newest seq of each room that published; a
// node that published nothing sends an empty one every `keepalive`. Events are
// numbered, so a subscriber that misses one knows it and asks its rooms' last seqs.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace switchboard::actors {

class RoomHeads {
 public:
  using Clock = std::chrono::steady_clock;

  /// Rooms named in one event at most; more go in the events after it, at once.
  static constexpr std::size_t kRoomsPerEvent = 4096;

  RoomHeads(std::string node, std::chrono::milliseconds interval, std::chrono::milliseconds keepalive)
      : node_(std::move(node)), interval_(interval), keepalive_(keepalive) {}

  /// `room` published `seq` (durable, on the PUB).
  void note(std::string_view room, std::uint64_t seq);
  /// The events due at `now`, encoded; call at every interval.
  std::vector<std::string> due(Clock::time_point now);
  std::chrono::milliseconds interval() const noexcept { return interval_; }

 private:
  std::string node_;
  std::chrono::milliseconds interval_, keepalive_;
  std::unordered_map<std::string, std::uint64_t> noted_;
  std::uint64_t number_ = 0;
  std::optional<Clock::time_point> last_sent_;  ///< none: the first is due at once
};

}  // namespace switchboard::actors
