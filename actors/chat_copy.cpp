// Catching up from a copy of the primary's store (docs/REPLICATION.md).
//
// A replica whose log is behind what its primary's log keeps (a new replica of a shard
// that has history, a lost data directory), or that holds a diverged tail it cannot
// take back, is sent a copy of the primary's store: persistence copies the whole
// environment (mdb_env_copy2, compacted, one read transaction), and the copy goes in
// 256 KiB chunks over the node link ('S'), at most 8 unacknowledged ('H' says how much
// the replica has written). The replica installs the shard's part of it in one write
// transaction (its rooms, members, messages, log position and terms), then takes the
// log's entries from there as usual. A chunk lost with a link is sent again once the
// replica has said nothing new for a heartbeat.
#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/router/peer_frames.hpp"

namespace switchboard::actors {

namespace {
/// Heartbeats before a replica that was sent a whole copy may be sent another: a copy
/// that cannot be installed there is not sent over and over.
constexpr std::uint64_t kCopyPause = 30;
}  // namespace

void Chat::send_copy(const std::string& shard, const std::string& replica, Effects& out) {
  auto& f = primary_logs_.at(shard).followers.at(replica);
  if (f.copying || ticks_ < f.no_copy_until) return;
  f.copying = true;
  // Copies are numbered from where this process's forward numbers start (at random): a
  // replica never takes a chunk of this copy for one of a previous process's.
  const std::uint64_t corr = next_corr_++, id = next_forward_++;
  copies_out_[{shard, replica}] = CopyOut{id};
  copy_ops_.emplace(corr, CopyTask{shard, replica, id});
  spdlog::warn("chat: replica {} of shard {} is behind what this node's log keeps, or asked: it is sent a copy of "
               "the store",
               replica, shard);
  out.send(options_.persistence_actor, store::encode(store::CopyOp{store::CopyOp::Kind::make, corr, id}));
}

void Chat::pump_copy(const std::string& shard, const std::string& replica, CopyOut& copy, Effects& out) {
  if (copy.reading || copy.size == 0 || copy.sent >= copy.size || copy.sent >= copy.acked + kCopyWindow * kCopyChunk)
    return;
  copy.reading = true;
  const std::uint64_t corr = next_corr_++;
  copy_ops_.emplace(corr, CopyTask{shard, replica, copy.id});
  out.send(options_.persistence_actor,
           store::encode(store::CopyOp{store::CopyOp::Kind::read, corr, copy.id, {}, copy.sent, kCopyChunk}));
}

void Chat::end_copy(const std::string& shard, const std::string& replica, Effects& out) {
  auto it = copies_out_.find({shard, replica});
  if (it == copies_out_.end()) return;
  out.send(options_.persistence_actor, store::encode(store::CopyOp{store::CopyOp::Kind::drop, 0, it->second.id}));
  copies_out_.erase(it);
  if (auto p = primary_logs_.find(shard); p != primary_logs_.end())
    if (auto f = p->second.followers.find(replica); f != p->second.followers.end()) f->second.copying = false;
}

void Chat::end_copies(const std::string& shard, Effects& out) {
  std::vector<std::string> replicas;
  for (const auto& [key, copy] : copies_out_)
    if (key.first == shard) replicas.push_back(key.second);
  for (const auto& replica : replicas) end_copy(shard, replica, out);
}

void Chat::on_copy_request(const std::string& node, const router::PeerFrame& frame, Effects& out) {
  const std::string shard(frame.body);
  auto p = primary_logs_.find(shard);
  if (p == primary_logs_.end() || !p->second.followers.count(node)) return;  // not its primary: it learns from 'W'
  send_copy(shard, node, out);
}

void Chat::on_copy_done(store::CopyDone& done, const Now& now, Effects& out) {
  auto op = copy_ops_.find(done.corr);
  if (op == copy_ops_.end()) return;
  auto [shard, replica, id] = std::move(op->second);
  copy_ops_.erase(op);
  if (replica.empty()) {  // a copy coming in
    auto in = copies_in_.find(shard);
    if (in == copies_in_.end() || in->second.id != id) return;  // given up, or another copy since
    CopyIn& c = in->second;
    if (c.installing) {
      copies_in_.erase(in);
      if (done.error.code != errc::ok) {
        spdlog::error("chat: the copy of shard {} from node {} could not be installed: {}", shard, c.from,
                      done.error.message);
        return;  // it reports where its log is; its primary sends another copy later
      }
      return installed(shard, done, out);
    }
    if (done.error.code != errc::ok) {
      spdlog::error("chat: writing the copy of shard {} from node {}: {}", shard, c.from, done.error.message);
      c.received = c.written;  // the primary sends the rest again
      return;
    }
    c.written += done.size;
    out.send(peer_actor(c.from), router::encode_peer(router::PeerKind::had, c.written, router::encode_had(shard, c.id)));
    if (c.written < c.size) return;
    c.installing = true;
    const std::uint64_t corr = next_corr_++;
    copy_ops_.emplace(corr, CopyTask{shard, {}, c.id});
    const auto window = static_cast<std::uint64_t>(options_.limits.dedup_window.count());
    out.send(options_.persistence_actor,
             store::encode(store::CopyOp{store::CopyOp::Kind::install, corr, c.id, shard,
                                         now.wall_ms > window ? now.wall_ms - window : 0}));
    return;
  }
  auto it = copies_out_.find({shard, replica});
  if (it == copies_out_.end()) {
    // Ended meanwhile; a copy made for it is deleted now.
    if (done.error.code == errc::ok && done.data.empty())
      out.send(options_.persistence_actor, store::encode(store::CopyOp{store::CopyOp::Kind::drop, 0, id}));
    return;
  }
  CopyOut& copy = it->second;
  if (done.error.code != errc::ok) {
    spdlog::error("chat: the copy of the store for replica {} of shard {}: {}", replica, shard, done.error.message);
    return end_copy(shard, replica, out);
  }
  if (copy.size == 0) {  // made
    copy.size = done.size;
    spdlog::info("chat: a copy of the store for replica {} of shard {}: {} bytes", replica, shard, copy.size);
    return pump_copy(shard, replica, copy, out);
  }
  copy.reading = false;
  const std::uint64_t offset = copy.sent;
  copy.sent += done.data.size();
  out.send(peer_actor(replica), router::encode_peer(router::PeerKind::chunk, offset,
                                                    router::encode_chunk({shard, copy.id, copy.size, done.data})));
  pump_copy(shard, replica, copy, out);
}

void Chat::on_had(const std::string& node, const router::PeerFrame& frame, Effects& out) {
  auto had = router::decode_had(frame.body);
  if (!had) {
    spdlog::warn("chat: unreadable copy acknowledgement from node {}", node);
    return;
  }
  const std::string shard(had->first);
  auto it = copies_out_.find({shard, node});
  if (it == copies_out_.end() || it->second.id != had->second) return;  // an old copy's
  CopyOut& copy = it->second;
  if (frame.corr < copy.acked) {
    copy.sent = copy.acked = frame.corr;  // it started over (it restarted): from there again
  } else if (frame.corr > copy.acked) {
    copy.acked = std::min(frame.corr, copy.size);
  }
  if (copy.acked == copy.size) {
    ++stats_.copies_sent;
    if (auto* m = options_.metrics) m->copies_sent.Increment();
    spdlog::info("chat: replica {} of shard {} has the whole copy of the store ({} bytes)", node, shard, copy.size);
    primary_logs_.at(shard).followers.at(node).no_copy_until = ticks_ + kCopyPause;
    return end_copy(shard, node, out);
  }
  pump_copy(shard, node, copy, out);
}

void Chat::on_chunk(const std::string& node, const router::PeerFrame& frame, Effects& out) {
  auto chunk = router::decode_chunk(frame.body);
  if (!chunk) {
    spdlog::warn("chat: unreadable copy chunk from node {}", node);
    return;
  }
  const std::string shard(chunk->shard);
  if (seat_shared_with(shard, node) == nullptr) {
    spdlog::warn("chat: node {} sent a copy of shard {}, which this node is no replica of for it", node, shard);
    return;
  }
  // Only from the primary it follows, and only as a replica.
  if (!replica_logs_.count(shard) || routes_.at(shard).primary != node) return;
  const std::uint64_t offset = frame.corr;
  auto& c = copies_in_[shard];
  if (c.installing) return;
  if (c.from != node || c.id != chunk->copy || c.size != chunk->size) {
    if (offset != 0) {  // a copy it knows nothing of (it restarted): from the start
      if (c.from.empty()) copies_in_.erase(shard);
      out.send(peer_actor(node), router::encode_peer(router::PeerKind::had, 0, router::encode_had(shard, chunk->copy)));
      return;
    }
    c = CopyIn{node, chunk->copy, chunk->size};
    spdlog::info("chat: receiving a copy of shard {} from node {} ({} bytes)", shard, node, c.size);
  }
  // A chunk it has (sent again), or one past a lost one: the primary sends again from
  // what was acknowledged.
  if (offset != c.received || chunk->data.empty() || offset + chunk->data.size() > c.size) return;
  c.received += chunk->data.size();
  const std::uint64_t corr = next_corr_++;
  copy_ops_.emplace(corr, CopyTask{shard, {}, c.id});
  out.send(options_.persistence_actor, store::encode(store::CopyOp{store::CopyOp::Kind::write, corr, c.id, shard, offset,
                                                                   0, std::string(chunk->data)}));
}

void Chat::installed(const std::string& shard, store::CopyDone& done, Effects& out) {
  auto r = replica_logs_.find(shard);
  if (r == replica_logs_.end()) return;
  // The shard's rooms as the copy has them: the old view and retry window go first.
  std::vector<std::string> gone;
  std::set<std::uint32_t> forget;  // their retry window
  for (const auto& [room, state] : book_.rooms())
    if (*shard_of(room) == shard) gone.push_back(room);
  for (const auto& room : gone) {
    if (auto id = dedup_rooms_.find(room); id != dedup_rooms_.end()) forget.insert(id->second);
    book_.erase(room);
  }
  dedup_.erase_rooms([&](std::uint32_t room) { return forget.count(room) > 0; });
  apply_replicated(done.view);
  for (const auto& record : done.view)  // shown once this node serves the shard's reads (restart_lsn, below)
    if (const auto* create = std::get_if<persistence::CreateRoom>(&record))
      if (Room* room = book_.find(create->room)) room->durable_seq = room->last_seq;
  Seat& seat = seats_.at(shard);
  seat.terms = std::move(done.terms);
  seat.stuck = false;
  ReplicaLog& log = r->second;
  log.received = log.durable = log.trimmed = done.position.lsn;
  log.matched = done.position.lsn;
  log.unseen.clear();
  // Which of the copy's entries are committed the copy does not say (it holds the
  // primary's tail as it was), and in a shard that fails over an election could take
  // that tail back: as after a restart, this node serves no reads of the shard itself
  // until its primary says it has committed this far (`committed` stays what the
  // primary last said). A shard that does not fail over keeps its primary's log.
  if (fails_over(*seat.config)) log.restart_lsn = done.position.lsn;
  else log.committed = std::max(log.committed, done.position.lsn);
  log.gap_asked = ~std::uint64_t{0};
  log.mismatch_logged = 0;
  ++stats_.copies_installed;
  if (auto* m = options_.metrics) m->copies_installed.Increment();
  if (done.reconciled > 0) {
    stats_.reconciled += done.reconciled;
    if (auto* m = options_.metrics) m->reconciled.Increment(static_cast<double>(done.reconciled));
    spdlog::warn("chat: shard {}: {} message(s) this node stored that the copy does not have are in its reconciled "
                 "table now",
                 shard, done.reconciled);
  }
  std::size_t rooms = 0;
  for (const auto& record : done.view) rooms += std::holds_alternative<persistence::CreateRoom>(record) ? 1 : 0;
  spdlog::warn("chat: installed the copy of shard {}: {} rooms, {} messages; its log goes on after lsn {} (term {})",
               shard, rooms, done.size, done.position.lsn, done.position.term);
  learned(shard, out);
  send_kept(shard, out);
}

void Chat::copy_tick(Effects& out) {
  ++ticks_;
  for (auto& [key, copy] : copies_out_) {
    // Nothing new from the replica for a heartbeat: what it has not acknowledged, again.
    if (copy.size > 0 && copy.acked == copy.acked_at_tick && !copy.reading && health_->up(key.second)) {
      copy.sent = copy.acked;
      pump_copy(key.first, key.second, copy, out);
    }
    copy.acked_at_tick = copy.acked;
  }
  // A replica holding a tail it cannot take back asks its primary for a copy.
  for (const auto& [shard, log] : replica_logs_)
    if (seats_.at(shard).stuck && !copies_in_.count(shard) && !log.primary.empty() && health_->up(log.primary))
      out.send(peer_actor(log.primary), router::encode_peer(router::PeerKind::copy, 0, shard));
}

}  // namespace switchboard::actors
