#include "switchboard/actors/chat/room_heads.hpp"

#include <algorithm>

#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

void RoomHeads::note(std::string_view room, std::uint64_t seq) {
  auto [it, added] = noted_.try_emplace(std::string(room), seq);
  if (!added) it->second = std::max(it->second, seq);
}

std::vector<std::string> RoomHeads::due(Clock::time_point now) {
  std::vector<std::string> events;
  if (noted_.empty() && last_sent_ && now - *last_sent_ < keepalive_) return events;
  transport::HeadsEvent heads{node_, 0, {}};
  heads.rooms.reserve(std::min(noted_.size(), kRoomsPerEvent));
  auto emit = [&] {
    heads.number = ++number_;
    events.push_back(transport::encode_heads(heads));
    heads.rooms.clear();
  };
  for (auto& [room, seq] : noted_) {
    heads.rooms.push_back({room, seq});
    if (heads.rooms.size() == kRoomsPerEvent) emit();
  }
  if (!heads.rooms.empty() || events.empty()) emit();
  noted_.clear();
  last_sent_ = now;
  return events;
}

}  // namespace switchboard::actors
