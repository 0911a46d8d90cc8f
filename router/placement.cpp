#include "switchboard/router/placement.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

#include <sodium.h>

#include "switchboard/common/event_rooms.hpp"

namespace switchboard::router {

RoomPlacement::RoomPlacement(std::vector<ShardConfig> shards) : shards_(std::move(shards)) {
  if (shards_.empty()) throw std::invalid_argument("a placement needs at least one shard");
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
}

std::uint64_t RoomPlacement::weight(std::string_view shard, std::string_view room) {
  static const unsigned char key[crypto_shorthash_KEYBYTES] = {};
  std::string input;
  input.reserve(shard.size() + 1 + room.size());
  input.append(shard).push_back('\0');
  input.append(room);
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, reinterpret_cast<const unsigned char*>(input.data()), input.size(), key);
  std::uint64_t w = 0;
  for (int i = 0; i < 8; ++i) w = (w << 8) | out[i];  // big-endian: the same on every platform
  return w;
}

const ShardConfig& RoomPlacement::owner_of(std::string_view name) const {
  const std::string_view room = placement_name(name);  // a room's events log goes with it
  const ShardConfig* best = &shards_.front();
  std::uint64_t best_weight = weight(best->name, room);
  for (std::size_t i = 1; i < shards_.size(); ++i) {
    std::uint64_t w = weight(shards_[i].name, room);
    // Ties (astronomically rare) go to the smaller name, so every node agrees.
    if (w > best_weight || (w == best_weight && shards_[i].name < best->name)) {
      best = &shards_[i];
      best_weight = w;
    }
  }
  return *best;
}

}  // namespace switchboard::router
