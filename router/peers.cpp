#include "switchboard/router/peers.hpp"

#include <spdlog/spdlog.h>

namespace switchboard::router {

PeerHealth::PeerHealth(const std::vector<std::string>& peers, PeerOptions options, Clock::time_point now)
    : options_(options) {
  for (const auto& p : peers) peers_[p] = State{true, now};
}

bool PeerHealth::heard_from(const std::string& peer, Clock::time_point now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return false;
  it->second.last_heard = now;
  if (it->second.up) return false;
  it->second.up = true;
  spdlog::info("node {} is up: breaker closed", peer);
  return true;
}

bool PeerHealth::unreachable(const std::string& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.up) return false;
  it->second.up = false;
  spdlog::warn("node {} is unreachable: breaker open", peer);
  return true;
}

std::vector<std::string> PeerHealth::tick(Clock::time_point now) {
  std::vector<std::string> down;
  const auto silence = options_.heartbeat * options_.misses;
  for (auto& [name, state] : peers_) {
    if (state.up && now - state.last_heard > silence) {
      state.up = false;
      down.push_back(name);
      spdlog::warn("node {} missed {} heartbeats: breaker open", name, options_.misses);
    }
  }
  return down;
}

bool PeerHealth::up(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.up;
}

std::map<std::string, bool> PeerHealth::states() const {
  std::map<std::string, bool> out;
  for (const auto& [name, state] : peers_) out[name] = state.up;
  return out;
}

}  // namespace switchboard::router
