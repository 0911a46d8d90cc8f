// RoomPlacement: which chat shard owns a room, by rendezvous (highest random weight)
// hashing. Every node computes the same answer from the same topology file, with no
// coordination. Adding a shard moves only the rooms that now hash highest to it
// (about 1/N of them); removing one moves only its own rooms.
#pragma once

#include <string_view>
#include <vector>

#include "switchboard/router/topology.hpp"

namespace switchboard::router {

class RoomPlacement {
 public:
  /// `shards` must not be empty (a valid topology always has one).
  explicit RoomPlacement(std::vector<ShardConfig> shards);

  /// The shard that owns `room`: the one with the highest weight(shard, room). A room's
  /// events log (common/event_rooms.hpp) is owned by the room's shard.
  const ShardConfig& owner_of(std::string_view room) const;

  /// The weight of (shard, room): SipHash-2-4 (libsodium's crypto_shorthash) of
  /// shard name, a NUL byte and the room name, under a fixed all-zero key, so it is
  /// the same on every node, build and platform. Exposed for tests and tools.
  static std::uint64_t weight(std::string_view shard, std::string_view room);

 private:
  std::vector<ShardConfig> shards_;
};

}  // namespace switchboard::router
