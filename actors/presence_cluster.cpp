// Presence on a node of several: sharing this node's users and rooms' members with the
// other nodes, and applying what they share (actors/presence_sync.hpp).
#include <spdlog/spdlog.h>

#include "switchboard/actors/presence.hpp"
#include "switchboard/common/overloaded.hpp"

namespace switchboard::actors {

namespace sync = presence_sync;

std::string presence_peer_actor(const std::string& node) { return "@" + node; }

void Presence::on_start(const std::vector<std::string>&, const std::vector<std::string>&, const Now& now,
                        Effects& out) {
  if (!options_.cluster) return;
  health_.emplace(options_.cluster->others, options_.cluster->peers, now.steady);
  heartbeat(now, out);
}

void Presence::on_stop(const Now& now, Effects& out) {
  if (options_.cluster) broadcast(sync::Bye{now.wall_ms}, out);
}

std::vector<std::string> Presence::synced_with() const {
  std::vector<std::string> nodes;
  for (const auto& [node, origin] : origins_)
    if (health_ && health_->up(node) && origin.incarnation != 0 && origin.latest.first == origin.incarnation &&
        origin.seq >= origin.latest.second)
      nodes.push_back(node);
  return nodes;
}

void Presence::heartbeat(const Now& now, Effects& out) {
  for (const auto& node : health_->tick(now.steady)) {
    spdlog::warn("presence: node {} missed {} heartbeats: its users are offline until it is back", node,
                 health_->options().misses);
    forget(node, now.wall_ms, out);  // seen until about now: each node has its own guess
  }
  broadcast(sync::Beat{options_.cluster->incarnation, seq_}, out);
  out.start_timer(kBeatTimer, now.steady + health_->options().heartbeat);
}

void Presence::broadcast(const sync::Frame& frame, Effects& out) {
  const std::string payload = sync::encode(frame);
  for (const auto& node : options_.cluster->others) out.send(presence_peer_actor(node), payload);
}

void Presence::share_user(const std::string& user, Effects& out) {
  if (!options_.cluster) return;
  sync::UserState state{user, false, transport::Availability::online, {}, 0};
  if (auto u = users_.find(user); u != users_.end()) {
    state.online = !u->second.sessions.empty();
    state.status = u->second.status;
    state.text = u->second.text;
    state.at_ms = u->second.at_ms;
  }
  if (!state.online) state.last_seen = last_seen_.find(user);
  broadcast(sync::UserChange{options_.cluster->incarnation, ++seq_, std::move(state)}, out);
}

void Presence::share_member(const std::string& room, const std::string& user, bool joined, bool private_room,
                            Effects& out) {
  if (!options_.cluster) return;
  broadcast(sync::MemberChange{options_.cluster->incarnation, ++seq_, room, user, joined, private_room}, out);
}

void Presence::send_snapshot(const std::string& node, Effects& out) {
  std::vector<sync::UserState> users;
  for (const auto& [name, user] : users_)
    if (!user.sessions.empty()) users.push_back({name, true, user.status, user.text, user.at_ms});
  // Every last-seen time known here, even those other nodes reported: the latest wins
  // everywhere, so a node that started or missed changes ends with the same answer.
  for (const auto& [name, seen] : last_seen_.entries()) {
    auto u = users_.find(std::string(name));
    if (u == users_.end() || u->second.sessions.empty())
      users.push_back({std::string(name), false, transport::Availability::online, {}, 0, seen});
  }
  std::vector<sync::RoomMembers> rooms;
  for (const auto& [name, room] : rooms_)
    if (room.owner.empty()) rooms.push_back({name, {room.members.begin(), room.members.end()}, room.private_room});
  for (const auto& part : sync::split_snapshot(options_.cluster->incarnation, seq_, std::move(users), std::move(rooms)))
    out.send(presence_peer_actor(node), sync::encode(part));
}

void Presence::ask_resync(const std::string& node, Origin& origin, const Now& now, Effects& out) {
  // Once per heartbeat at most: the snapshot asked for is on its way.
  if (origin.asked && now.steady - *origin.asked < health_->options().heartbeat) return;
  origin.asked = now.steady;
  out.send(presence_peer_actor(node), sync::encode(sync::Resync{}));
}

void Presence::set_remote_user(Origin& origin, sync::UserState state, std::uint64_t now_ms, Effects& out, bool tell) {
  const std::string user = state.user;
  if (!state.online) {
    const bool was_online = origin.users.count(user) > 0;
    // Not told when: the sessions there ended by now at the latest.
    if (state.last_seen || was_online) last_seen_.record(user, state.last_seen.value_or(now_ms));
    if (!was_online) return;  // nothing else changes (a snapshot's offline users)
  }
  change_user(user, [&] {
    if (state.online) origin.users[user] = std::move(state);
    else origin.users.erase(user);
  }, out, tell);
}

void Presence::forget(const std::string& node, std::uint64_t seen_ms, Effects& out) {
  Origin& origin = origins_[node];
  const bool tell = tells_for(node);  // its users' going offline: one node tells the webhooks
  while (!origin.users.empty()) {
    auto state = origin.users.begin()->second;
    state.online = false;
    state.last_seen = seen_ms;
    set_remote_user(origin, std::move(state), seen_ms, out, tell);
  }
  origin.incarnation = origin.seq = 0;  // its next beat asks for everything again
  origin.staging.clear();
  origin.asked.reset();
}

void Presence::apply_snapshot(const std::string& node, Origin& origin, const Now& now, Effects& out) {
  std::map<std::string, sync::UserState> users;
  std::map<std::string, std::set<std::string>> rooms;
  std::set<std::string> private_rooms;
  for (auto& part : origin.staging) {
    for (auto& u : part.users) users[u.user] = std::move(u);
    for (auto& r : part.rooms) {
      rooms[r.room].insert(r.members.begin(), r.members.end());
      if (r.private_room) private_rooms.insert(r.room);
    }
  }
  // A new process of that node: the old one's sessions ended with it, later than any
  // last-seen time the new one sends (learned from others, if at all): seen until now.
  if (origin.incarnation != 0 && origin.incarnation != origin.staging.back().incarnation)
    for (const auto& [user, state] : origin.users)
      if (auto u = users.find(user); u != users.end() && !u->second.online) u->second.last_seen.reset();
  origin.incarnation = origin.staging.back().incarnation;
  origin.seq = origin.staging.back().seq;
  origin.staging.clear();

  std::vector<std::string> gone;
  for (const auto& [user, state] : origin.users)
    if (!users.count(user)) gone.push_back(user);
  for (const auto& user : gone) set_remote_user(origin, {user, false, {}, {}, 0}, now.wall_ms, out, false);
  for (auto& [user, state] : users) set_remote_user(origin, std::move(state), now.wall_ms, out, false);

  for (auto& [name, members] : rooms) {
    auto [it, fresh] = rooms_.try_emplace(name);
    Room& room = it->second;
    room.owner = node;
    room.private_room = private_rooms.count(name) > 0;
    if (fresh) {  // first heard of here: nobody can have seen its members change
      for (const auto& m : members) users_[m].rooms.insert(name);
      room.members = std::move(members);
      continue;
    }
    std::vector<std::string> left;
    for (const auto& m : room.members)
      if (!members.count(m)) left.push_back(m);
    for (const auto& m : left) leave(room, name, m, out);
    for (const auto& m : members) join(room, name, m, out);
  }
}

void Presence::on_node_message(const Inbound& in, const Now& now, Effects& out) {
  if (!health_) return;
  if (in.via == Inbound::Via::undeliverable) {
    // No live connection to that node: it is down (or not up yet).
    const std::string node(in.sender.substr(1));
    if (health_->known(node) && health_->unreachable(node)) {
      spdlog::warn("presence: node {} cannot be reached: its users are offline until it is back", node);
      forget(node, now.wall_ms, out);
    }
    return;
  }
  const std::string node(in.sender);
  if (!health_->known(node) || in.frames.size() != 1) {
    spdlog::warn("presence: ignored a message on the presence peer link from '{}', which is not a node of the topology "
                 "(or sent {} frames)", node, in.frames.size());
    return;
  }
  auto frame = sync::decode(in.frames[0], sync_limits_);
  if (!frame) {
    spdlog::error("presence: unreadable message from node {}: {}", node, frame.error().message);
    return;
  }
  if (!std::holds_alternative<sync::Bye>(*frame) && health_->heard_from(node, now.steady))
    spdlog::info("presence: node {} is back", node);
  Origin& origin = origins_[node];
  auto in_order = [&](std::uint64_t incarnation, std::uint64_t seq) {
    if (origin.incarnation != 0 && incarnation == origin.incarnation && seq == origin.seq + 1) {
      origin.seq = seq;
      return true;
    }
    ask_resync(node, origin, now, out);  // something was missed: start again from a snapshot
    return false;
  };
  std::visit(Overloaded{
                 [&](const sync::Beat& b) {
                   origin.latest = {b.incarnation, b.seq};
                   if (b.incarnation != origin.incarnation || b.seq != origin.seq) ask_resync(node, origin, now, out);
                 },
                 [&](const sync::Resync&) { send_snapshot(node, out); },
                 [&](const sync::Bye& b) {
                   spdlog::info("presence: node {} is stopping: its users are offline", node);
                   health_->unreachable(node);
                   forget(node, b.at_ms.value_or(now.wall_ms), out);
                 },
                 [&](sync::UserChange& c) {
                   if (in_order(c.incarnation, c.seq)) set_remote_user(origin, std::move(c.state), now.wall_ms, out, false);
                 },
                 [&](sync::MemberChange& c) {
                   if (!in_order(c.incarnation, c.seq)) return;
                   auto [it, fresh] = rooms_.try_emplace(c.room);
                   if (fresh) it->second.owner = node;
                   it->second.private_room = c.private_room;
                   if (c.joined) join(it->second, c.room, c.user, out);
                   else leave(it->second, c.room, c.user, out);
                 },
                 [&](sync::SnapshotPart& p) {
                   const bool follows = !origin.staging.empty() && origin.staging.back().part + 1 == p.part &&
                                        origin.staging.back().incarnation == p.incarnation &&
                                        origin.staging.back().seq == p.seq;
                   if (p.part != 0 && !follows) {  // a part went missing: the next beat asks again
                     origin.staging.clear();
                     return;
                   }
                   if (p.part == 0) origin.staging.clear();
                   const bool last = p.last;
                   origin.staging.push_back(std::move(p));
                   if (last) apply_snapshot(node, origin, now, out);
                 },
                 [&](const sync::TypingNote& t) {
                   auto room = rooms_.find(t.room);
                   if (room == rooms_.end() || !room->second.members.count(t.user)) return;
                   const auto ttl = std::min<std::uint64_t>(t.ttl_ms, 60'000);
                   room->second.typing[t.user] = now.steady + std::chrono::milliseconds(ttl);
                   publish(room->second, t.room, t.user, transport::PresenceEvent::Kind::typing, out, ttl);
                 },
             },
             *frame);
}

}  // namespace switchboard::actors
