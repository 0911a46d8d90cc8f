// Chat on a node of several: forwarding requests to the room's owner, gathering room
// lists, heartbeats and breakers, and relaying other nodes' room messages to the
// subscribers of this one.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/transport/ops.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/router/peer_frames.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

std::string peer_actor(const std::string& node) { return "@" + node; }

const std::string* Chat::room_of(const transport::RequestBody& request) { return transport::room_of(request); }

bool Chat::reads_room(const transport::RequestBody& request) {
  const auto& op = transport::traits(request);
  return op.names_room && op.access == transport::Access::read;
}

std::map<std::string, bool> Chat::peer_states() const {
  return health_ ? health_->states() : std::map<std::string, bool>{};
}

const std::string* Chat::owner_elsewhere(const transport::RequestBody& request) const {
  const std::string* room = room_of(request);
  if (room == nullptr) return nullptr;
  const std::string& owner = primary_of_shard(*shard_of(*room));
  return owner == options_.cluster->self ? nullptr : &owner;
}

void Chat::forward(const std::string& node, const Caller& caller, std::string_view frame, std::uint64_t gather,
                   const Now& now, Effects& out) {
  if (!health_->up(node)) {
    ++stats_.forward_failures;
    if (gather != 0) return gathered(gather, node, nullptr, out);
    return reply_error(out, caller, errc::unavailable,
                       "node '" + node + "', which owns this room, is down; try again later");
  }
  const std::uint64_t corr = next_forward_++;
  const auto deadline = now.steady + health_->options().request_timeout;
  forwards_.emplace(corr, Forward{caller, node, gather});
  forward_order_.emplace_back(deadline, corr);
  ++stats_.forwarded;
  out.send(peer_actor(node), router::encode_peer(router::PeerKind::forward, corr, frame));
}

void Chat::gather_rooms(const Caller& caller, const transport::ListRooms& request,
                        const std::optional<std::string>& as, std::string_view frame, const Now& now, Effects& out) {
  const std::uint64_t id = next_forward_++;
  Gather& g = gathers_[id];
  g.caller = caller;
  g.request = request;
  g.summarized = RoomBook::summarized(request, as);
  gathered(g, options_.cluster->self, local_rooms(request, as));
  ask_every_node(id, frame, now, out);
}

transport::RoomsOk Chat::local_rooms(const transport::ListRooms& request, const std::optional<std::string>& as) const {
  transport::RoomsOk ok;
  const bool summarized = RoomBook::summarized(request, as);
  for (const auto& [name, room] : book_.rooms()) {
    if (!RoomBook::listed(name, room, request, as)) continue;
    if (!vouches_for(name)) {
      ok.missing_shards.push_back(*shard_of(name));
      continue;
    }
    ok.rooms.push_back(name);
    if (summarized) ok.summaries.push_back(RoomBook::summary(name, room, *request.user));
  }
  std::sort(ok.missing_shards.begin(), ok.missing_shards.end());
  ok.missing_shards.erase(std::unique(ok.missing_shards.begin(), ok.missing_shards.end()), ok.missing_shards.end());
  return ok;
}

void Chat::gathered(Gather& g, const std::string& node, const transport::RoomsOk& ok) {
  g.rooms.insert(ok.rooms.begin(), ok.rooms.end());
  g.more = g.more || ok.more;
  for (const auto& s : ok.summaries) {
    auto [it, fresh] = g.summaries.try_emplace(s.room, s);
    if (!fresh && (s.last_seq > it->second.last_seq ||
                   (s.last_seq == it->second.last_seq && s.read_seq > it->second.read_seq)))
      it->second = s;
  }
  for (const auto& shard : ok.missing_shards) g.withheld[shard].push_back(node);
}

void Chat::ask_every_node(std::uint64_t id, std::string_view frame, const Now& now, Effects& out) {
  Gather& g = gathers_.at(id);
  g.waiting = options_.cluster->others.size();
  if (g.waiting == 0) return finish_gather(gathers_.find(id), out);
  const Caller caller = g.caller;  // forward() may end the gather (a node known down)
  for (const auto& node : options_.cluster->others) forward(node, caller, frame, id, now, out);
}

void Chat::gathered(std::uint64_t gather, const std::string& node, const transport::ReplyBody* body, Effects& out) {
  auto it = gathers_.find(gather);
  if (it == gathers_.end()) return;
  Gather& g = it->second;
  if (const auto* ok = body ? std::get_if<transport::RoomsOk>(body) : nullptr)
    gathered(g, node, *ok);
  else if (const auto* shards = body ? std::get_if<transport::ShardsOk>(body) : nullptr)
    g.reports[node] = *shards;
  else
    g.missing.push_back(node);
  if (--g.waiting == 0) finish_gather(it, out);
}

void Chat::finish_gather(std::unordered_map<std::uint64_t, Gather>::iterator it, Effects& out) {
  Gather& g = it->second;
  std::sort(g.missing.begin(), g.missing.end());
  if (g.shards) {
    g.reports[options_.cluster->self] = local_shards();
    reply(out, g.caller, merge_shards(g.reports, std::move(g.missing)));
  } else {
    transport::RoomsOk ok{{g.rooms.begin(), g.rooms.end()}};
    // A shard is there if any of its nodes answered for it (a replica has all its rooms).
    // One whose nodes all left it out (none can say yet what is committed there) is
    // missing too, and so, for it, are they: the reply is not complete.
    std::vector<std::string> left_it_out;
    for (const auto& shard : options_.cluster->shards) {
      const auto left_out = g.withheld.find(shard.name);
      auto answered = [&](const std::string& node) {
        return std::find(g.missing.begin(), g.missing.end(), node) == g.missing.end() &&
               (left_out == g.withheld.end() ||
                std::find(left_out->second.begin(), left_out->second.end(), node) == left_out->second.end());
      };
      if (answered(shard.owner) || std::any_of(shard.replicas.begin(), shard.replicas.end(), answered)) continue;
      ok.missing_shards.push_back(shard.name);
      if (left_out != g.withheld.end()) left_it_out.insert(left_it_out.end(), left_out->second.begin(), left_out->second.end());
    }
    ok.missing = std::move(g.missing);
    ok.missing.insert(ok.missing.end(), left_it_out.begin(), left_it_out.end());
    std::sort(ok.missing.begin(), ok.missing.end());
    ok.missing.erase(std::unique(ok.missing.begin(), ok.missing.end()), ok.missing.end());
    std::sort(ok.missing_shards.begin(), ok.missing_shards.end());
    ok.summaries.reserve(g.summaries.size());
    for (auto& [name, summary] : g.summaries) ok.summaries.push_back(std::move(summary));
    // Each node gave its own page: the merged one is within their union, and more are
    // left if any node had more.
    RoomBook::page_summaries(ok, g.request, g.summarized);
    ok.more = ok.more || g.more;
    reply(out, g.caller, std::move(ok));
  }
  gathers_.erase(it);
}

void Chat::forget_forward(Forwards::iterator it) {
  forwards_.erase(it);
  // Answered ones leave the deadline line as soon as they reach its front, so it holds
  // about what is in flight, not everything of the last request_timeout.
  while (!forward_order_.empty() && !forwards_.count(forward_order_.front().second)) forward_order_.pop_front();
}

void Chat::fail_forward(std::uint64_t corr, const std::string& why, Effects& out) {
  auto it = forwards_.find(corr);
  if (it == forwards_.end()) return;
  Forward f = std::move(it->second);
  forget_forward(it);
  ++stats_.forward_failures;
  if (f.gather != 0) return gathered(f.gather, f.node, nullptr, out);
  reply_error(out, f.caller, errc::unavailable, why);
}

void Chat::fail_forwards_to(const std::string& node, const std::string& why, Effects& out) {
  std::vector<std::uint64_t> lost;
  for (const auto& [corr, f] : forwards_)
    if (f.node == node) lost.push_back(corr);
  std::sort(lost.begin(), lost.end());  // in the order they were sent
  for (auto corr : lost) fail_forward(corr, why, out);
}

void Chat::on_undeliverable(const std::string& node, std::string_view frame, bool queue_full, Effects& out) {
  // A ping that cannot go out says no more than a missed heartbeat (a node just
  // started has not connected yet); a request that cannot means the node is gone,
  // unless the connection is there and only its queue is full.
  auto peer = router::decode_peer(frame);
  if (!peer || peer->kind != router::PeerKind::forward) return;
  if (queue_full)
    return fail_forward(peer->corr, "node '" + node + "', which owns this room, is not keeping up; try again later",
                        out);
  const std::string why = "node '" + node + "', which owns this room, is unreachable; try again later";
  fail_forward(peer->corr, why, out);
  if (health_ && health_->unreachable(node)) fail_forwards_to(node, why, out);
}

void Chat::on_peer_gone(const std::string& node, Effects& out) {
  // Its connection dropped: down until it answers again (a shard it is the primary of
  // starts its election at the next heartbeat, not after `misses` of them).
  if (health_ && health_->known(node) && health_->unreachable(node))
    fail_forwards_to(node, "node '" + node + "', which owns this room, is unreachable; try again later", out);
}

void Chat::on_peer_reply(const std::string& node, std::string_view frame, const Now& now, Effects& out) {
  if (!health_ || !health_->known(node)) return;
  auto peer = router::decode_peer(frame);
  if (!peer) {
    spdlog::error("chat: unreadable frame from node {}", node);
    return;
  }
  health_->heard_from(node, now.steady);
  if (peer->kind != router::PeerKind::reply) return on_replication(node, *peer, now, out);  // or a pong
  auto it = forwards_.find(peer->corr);
  // Answered late (after its caller was told unavailable), or not to this node at all.
  if (it == forwards_.end() || it->second.node != node) return;
  Forward f = std::move(it->second);
  forget_forward(it);
  if (f.gather != 0) {
    // A room list may be longer than any request may be: read it as clients do.
    transport::Limits limits = options_.limits;
    limits.max_frame = std::max<std::size_t>(limits.max_frame, 64u << 20);
    limits.max_array = std::max<std::size_t>(limits.max_array, 1u << 20);
    auto reply = transport::decode_reply(peer->body, limits);
    return gathered(f.gather, node, reply ? &reply->body : nullptr, out);
  }
  send_frame(out, f.caller, std::string(peer->body));  // the owner's reply, unchanged
}

void Chat::on_node_message(const Inbound& in, const Now& now, Effects& out) {
  auto peer = in.frames.size() == 1 ? router::decode_peer(in.frames[0]) : std::nullopt;
  if (!peer) {
    spdlog::warn("chat: unreadable message on the node mailbox from '{}'", in.sender);
    return;
  }
  switch (peer->kind) {
    case router::PeerKind::ping:
      out.reply_node(std::string(in.sender), router::encode_peer(router::PeerKind::pong, peer->corr));
      return;
    case router::PeerKind::forward:
      on_request(Caller{std::string(in.sender), 0, true, peer->corr}, peer->body, now, out);
      return;
    case router::PeerKind::bye: {
      const std::string node(in.sender);
      if (!health_ || !health_->known(node)) return;
      spdlog::info("chat: node {} is stopping", node);
      health_->unreachable(node);
      fail_forwards_to(node, "node '" + node + "', which owns this room, is stopping; try again later", out);
      return;
    }
    case router::PeerKind::log_entry:
    case router::PeerKind::kept:
    case router::PeerKind::gap:
    case router::PeerKind::diverged:
    case router::PeerKind::vote_request:
    case router::PeerKind::vote:
    case router::PeerKind::primary:
    case router::PeerKind::copy:
    case router::PeerKind::chunk:
    case router::PeerKind::had:
      if (health_ && health_->known(std::string(in.sender))) on_replication(std::string(in.sender), *peer, now, out);
      return;
    case router::PeerKind::reply:
    case router::PeerKind::pong:
    case router::PeerKind::accept:
    case router::PeerKind::refuse:
      spdlog::warn("chat: a reply on the node mailbox from '{}'", in.sender);
      return;
  }
}

void Chat::on_timer(std::uint64_t id, const Now& now, Effects& out) {
  if (id == kHeartbeatTimer && health_) heartbeat(now, out);
  if (id == kCheckTimer) expire_checks(now, out);
  if (id == kCallTimer) expire_calls(now, out);
  if (id == kRetentionTimer) retention_tick(now, out);
  if (id == kTrimTimer) next_trim_steps(now, out);
  if (id == kBlankTimer && health_ &&
      std::any_of(seats_.begin(), seats_.end(), [](const auto& s) { return s.second.blank; })) {
    tell_blank(out);
    // Often for the first `misses` heartbeats (a new shard starts at once); then at each
    // heartbeat only (a member that cannot hear from enough others waits for them).
    if (now.steady - started_ < health_->options().heartbeat * health_->options().misses)
      out.start_timer(kBlankTimer, next_blank_report(now.steady));
  }
  if (id == kHeadsTimer) {
    for (auto& event : heads_.due(now.steady)) out.publish(transport::heads_topic(), std::move(event));
    out.start_timer(kHeadsTimer, now.steady + heads_.interval());
  }
}

void Chat::heartbeat(const Now& now, Effects& out) {
  for (const auto& node : health_->tick(now.steady))
    fail_forwards_to(node, "node '" + node + "', which owns this room, stopped answering; try again later", out);
  while (!forward_order_.empty() && forward_order_.front().first <= now.steady) {
    auto corr = forward_order_.front().second;
    forward_order_.pop_front();
    if (auto it = forwards_.find(corr); it != forwards_.end())
      fail_forward(corr,
                   "no reply from node '" + it->second.node + "' within " +
                       std::to_string(health_->options().request_timeout.count()) + " ms; try again later",
                   out);
  }
  replication_tick(now, out);
  // Pings to every node, up or down: for a down one they are the half-open probes.
  for (const auto& node : options_.cluster->others)
    out.send(peer_actor(node), router::encode_peer(router::PeerKind::ping, 0));
  out.start_timer(kHeartbeatTimer, now.steady + health_->options().heartbeat);
}

void Chat::on_feed(const std::string& node, const Inbound& in, Effects& out) {
  if (in.frames.size() != 2) return;
  if (in.frames[0] == transport::heads_topic()) {
    // Only the heads the node made itself: a relay of a third node's is relayed by that
    // node's own feed.
    auto heads = transport::decode_heads(in.frames[1], options_.limits);
    if (heads && heads->node == node) out.publish(std::string(in.frames[0]), std::string(in.frames[1]));
    return;
  }
  if (transport::is_read_topic(in.frames[0])) {
    // Likewise: only the events of the node that stored the marker.
    auto event = transport::decode_read_event(in.frames[1], options_.limits);
    if (event && event->node == node) out.publish(std::string(in.frames[0]), std::string(in.frames[1]));
    return;
  }
  auto room = transport::room_of_topic(in.frames[0]);
  // Only what the room's primary published: another node's relay of a third node's
  // room (a prefix subscription sees those too) would be a duplicate here, and so would
  // a former primary's.
  if (!room || primary_of_shard(*shard_of(*room)) != node) return;
  ++stats_.relayed;
  if (auto* m = options_.metrics) m->messages.published(1);
  out.publish(std::string(in.frames[0]), std::string(in.frames[1]));
}

void Chat::on_subscription(std::string_view frame, Effects& out) {
  if (frame.empty() || !placement_) return;
  const bool on = frame[0] == 1;
  const std::string topic(frame.substr(1));
  if (auto room = transport::room_of_topic(topic)) {
    // Followed at the room's primary; when the shard changes primary, set_route moves it.
    if (on) feed_topics_.insert(topic);
    else feed_topics_.erase(topic);
    const std::string& owner = primary_of_shard(*shard_of(*room));
    if (!owner.empty() && owner != options_.cluster->self) out.subscribe(peer_feed(owner), topic, on);
    return;
  }
  for (const auto& node : options_.cluster->others) out.subscribe(peer_feed(node), topic, on);
}

}  // namespace switchboard::actors
