#include "switchboard/actors/bridge_delivery.hpp"

#include <algorithm>

namespace switchboard::actors {

bool RoomDelivery::expect(const std::string& room) {
  auto [it, added] = rooms_.try_emplace(room);
  ++it->second.expected;
  return added;
}

bool RoomDelivery::cancel(const std::string& room) {
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return false;
  if (it->second.expected > 0) --it->second.expected;
  return remove_if_empty(room);
}

void RoomDelivery::follow(ConnId conn, const std::string& name, std::uint64_t after, std::uint64_t last_seq) {
  Room& room = rooms_[name];
  if (room.expected > 0) --room.expected;
  room.latest = std::max(room.latest, last_seq);
  room.followers[conn] = Follower{after + 1, std::nullopt};
  dirty_.insert(name);
}

bool RoomDelivery::unfollow(ConnId conn, const std::string& room) {
  auto it = rooms_.find(room);
  if (it == rooms_.end() || it->second.followers.erase(conn) == 0) return false;
  return remove_if_empty(room);
}

bool RoomDelivery::remove_if_empty(const std::string& room) {
  auto it = rooms_.find(room);
  if (it == rooms_.end() || !it->second.followers.empty() || it->second.expected > 0) return false;
  rooms_.erase(it);
  return true;
}

void RoomDelivery::deliver(const SeqFrame& m, Room& room, DeliveryActions& out) {
  DeliveryActions::Deliver batch{m.frame, {}};
  for (auto& [conn, f] : room.followers)
    if (f.next == m.seq) {
      batch.to.push_back(conn);
      ++f.next;
    }
  if (!batch.to.empty()) out.deliver.push_back(std::move(batch));
}

void RoomDelivery::catch_up(const std::string& name, Room& room, DeliveryActions& out) {
  for (auto& [conn, f] : room.followers) {
    if (f.waiting || f.next > room.latest) continue;
    // A connection catches up no faster than it sends: a page never overflows its queue.
    const std::size_t budget = budget_ ? budget_(conn) : page_;
    if (budget == 0) continue;
    const std::uint64_t after = f.next - 1;
    f.waiting = after;
    // Followers at the same place share one fetch.
    if (room.fetching.insert(after).second) {
      const auto want = std::min<std::uint64_t>({room.latest - after, page_, budget});
      out.fetch.push_back({name, after, static_cast<std::uint32_t>(std::max<std::uint64_t>(want, 1))});
    }
  }
}

void RoomDelivery::on_live(const std::string& name, const SeqFrame& m, Clock::time_point now, DeliveryActions& out) {
  auto it = rooms_.find(name);
  if (it == rooms_.end()) return;
  Room& room = it->second;
  room.latest = std::max(room.latest, m.seq);
  room.last_live = now;
  room.check_due = true;
  deliver(m, room, out);
  dirty_.insert(name);  // those it showed a gap to
}

void RoomDelivery::on_history(const std::string& name, std::uint64_t after, const std::vector<SeqFrame>& messages,
                              bool more, DeliveryActions& out) {
  auto it = rooms_.find(name);
  if (it == rooms_.end()) return;
  Room& room = it->second;
  room.fetching.erase(after);
  if (!messages.empty()) room.latest = std::max(room.latest, messages.back().seq + (more ? 1 : 0));
  for (const auto& m : messages) deliver(m, room, out);
  for (auto& [conn, f] : room.followers)
    if (f.waiting == after) f.waiting.reset();
  if (messages.empty() && !more) {
    // Nothing stored past `after` when the node read it, yet something was known to be:
    // ask again on the next tick rather than at once.
    room.check_due = true;
    room.last_live = {};
    return;
  }
  dirty_.insert(name);
}

void RoomDelivery::on_fetch_failed(const std::string& name, std::uint64_t after) {
  auto it = rooms_.find(name);
  if (it == rooms_.end()) return;
  Room& room = it->second;
  room.fetching.erase(after);
  for (auto& [conn, f] : room.followers)
    if (f.waiting == after) f.waiting.reset();
  room.check_due = true;  // the next tick asks last_seq, which fetches again
  room.last_live = {};
}

void RoomDelivery::on_last_seq(const std::string& name, std::uint64_t seq) {
  auto it = rooms_.find(name);
  if (it == rooms_.end()) return;
  it->second.asking_last_seq = false;
  it->second.latest = std::max(it->second.latest, seq);
  dirty_.insert(name);
}

void RoomDelivery::on_last_seq_failed(const std::string& name) {
  auto it = rooms_.find(name);
  if (it == rooms_.end()) return;
  it->second.asking_last_seq = false;
  it->second.check_due = true;
}

void RoomDelivery::resume(const std::string& name) {
  if (rooms_.count(name)) dirty_.insert(name);
}

void RoomDelivery::plan(DeliveryActions& out) {
  for (const auto& name : dirty_)
    if (auto it = rooms_.find(name); it != rooms_.end()) catch_up(name, it->second, out);
  dirty_.clear();
}

void RoomDelivery::tick(Clock::time_point now, DeliveryActions& out) {
  for (auto& [name, room] : rooms_) {
    if (!room.check_due || room.asking_last_seq || room.followers.empty() || now - room.last_live < quiet_) continue;
    room.check_due = false;
    room.asking_last_seq = true;
    out.last_seq.push_back(name);
  }
}

std::uint64_t RoomDelivery::next(ConnId conn, const std::string& room) const {
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return 0;
  auto f = it->second.followers.find(conn);
  return f == it->second.followers.end() ? 0 : f->second.next;
}

}  // namespace switchboard::actors
