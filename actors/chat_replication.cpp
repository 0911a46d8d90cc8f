// Chat's replication of shards (docs/REPLICATION.md).
//
// The primary of a shard with replicas gives each batch that touches the shard one
// entry in the shard's log (lsn 1, 2, 3, ...), stored with the batch. Once the batch
// is durable here, the entry goes to every replica ('L'); a replica stores it (records
// and entry, one transaction), keeps its view of the rooms, and says so ('K'). With
// ack = replicated, the batch's requests are answered only once `ack_replicas`
// replicas have confirmed its entries, and batches are answered in order.
//
// Entries go out only once durable here: a batch that fails here is never on a
// replica. A replica that misses entries (a dropped link, a restart) asks for what
// follows the last one it received ('G'); the primary reads them from its log and
// sends them. A replica that says nothing while behind is sent its entries again at
// the next heartbeat.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/router/peer_frames.hpp"

namespace switchboard::actors {
namespace {

constexpr std::size_t kLogPageEntries = 256;
constexpr std::size_t kLogPageBytes = 4u << 20;

const std::string& room_of_record(const persistence::Record& record) {
  static const std::string none;
  return std::visit(Overloaded{
                        [](const persistence::LogEntry&) -> const std::string& { return none; },
                        [](const persistence::TrimLog&) -> const std::string& { return none; },
                        [](const persistence::ShardVote&) -> const std::string& { return none; },
                        [](const persistence::TruncateLog&) -> const std::string& { return none; },
                        [](const auto& r) -> const std::string& { return r.room; },
                    },
                    record);
}

/// What a replicated entry may hold: strings no longer than a frame, as many records
/// as a batch.
transport::Limits replicated_limits(const transport::Limits& limits) {
  transport::Limits l = limits;
  l.max_frame = std::size_t{1} << 30;
  l.max_string = std::max<std::size_t>(limits.max_socket_message, 1u << 20);
  l.max_array = std::size_t{1} << 20;
  return l;
}

}  // namespace

const std::string* Chat::shard_of(std::string_view room) const {
  return placement_ ? &placement_->owner_of(room).name : nullptr;
}

void Chat::log_batch(std::vector<persistence::Record>& records, Batch& batch) {
  if (primary_logs_.empty()) return;
  log_records(records, batch);
  // An op of a shard that fails over that wrote nothing (a join of a member, a leave of
  // a non-member) is answered from the state this node's log made: it waits, as a write
  // does, until the log's last entry is on enough replicas, so that no answer rests on
  // a tail that a failover could take back (found by the simulator, seed 57712).
  for (const auto& op : batch.ops) {
    const std::string* room = room_of(op.request);
    if (room == nullptr || op.answered) continue;
    const std::string& shard = *shard_of(*room);
    auto p = primary_logs_.find(shard);
    if (p == primary_logs_.end() || !fails_over(*p->second.config) ||
        std::any_of(batch.log.begin(), batch.log.end(), [&](const auto& e) { return e.first == shard; }) ||
        confirmed(p->second, p->second.last_lsn) >= p->second.needed)
      continue;
    batch.log.emplace_back(shard, p->second.last_lsn);
  }
}

void Chat::log_records(std::vector<persistence::Record>& records, Batch& batch) {
  if (records.empty()) return;
  std::map<std::string, std::vector<persistence::Record>> by_shard;
  for (const auto& record : records) {
    const std::string& room = room_of_record(record);
    if (room.empty()) continue;
    const std::string& shard = *shard_of(room);
    if (primary_logs_.count(shard)) by_shard[shard].push_back(record);
  }
  for (auto& [shard, shard_records] : by_shard) {
    PrimaryLog& log = primary_logs_.at(shard);
    persistence::LogEntry entry{shard, log.term, ++log.last_lsn, store::encode_records(shard_records)};
    if (auto& terms = seats_.at(shard).terms; terms.empty() || terms.back().term != log.term)
      terms.push_back({log.term, entry.lsn});
    records.push_back(entry);
    batch.log.emplace_back(shard, entry.lsn);
    batch.entries.push_back(std::move(entry));
  }
}

std::optional<std::string> Chat::replicas_missing(const std::string& room) const {
  if (primary_logs_.empty()) return std::nullopt;
  auto it = primary_logs_.find(*shard_of(room));
  if (it == primary_logs_.end()) return std::nullopt;
  const PrimaryLog& log = it->second;
  if (log.config->ack != router::ShardConfig::Ack::replicated) return std::nullopt;
  std::size_t up = 0;
  for (const auto& [replica, f] : log.followers) up += health_->up(replica) ? 1 : 0;
  if (up >= log.needed) return std::nullopt;
  return "shard '" + log.config->name + "' has " + std::to_string(up) + " of the " + std::to_string(log.needed) +
         " replicas its acknowledgements need up; try again later";
}

void Chat::on_durable(Batch batch, const Now& now, Effects& out) {
  // Ops that wrote nothing and wait for replicas (log_batch), of a shard this node
  // stopped being the primary of while the batch was at persistence: unavailable.
  for (std::size_t i = 0; i < batch.log.size();) {
    const std::string shard = batch.log[i].first;
    if (primary_logs_.count(shard) == 0) drop_shard_ops(batch, shard, out);  // takes it out of batch.log
    else ++i;
  }
  for (const auto& entry : batch.entries) {
    auto it = primary_logs_.find(entry.shard);
    if (it == primary_logs_.end() || it->second.term != entry.term) {
      // This node stopped being the shard's primary while the batch was at persistence:
      // the entry is in its log now (a tail the new primary may not have), unanswered.
      if (auto r = replica_logs_.find(entry.shard); r != replica_logs_.end()) {
        r->second.durable = std::max(r->second.durable, entry.lsn);
        note_unseen(batch, entry.shard, r->second.unseen);
        show_committed(r->second.unseen, std::min(r->second.committed, r->second.matched));
      }
      drop_shard_ops(batch, entry.shard, out);
      continue;
    }
    PrimaryLog& log = it->second;
    log.durable_lsn = std::max(log.durable_lsn, entry.lsn);
    for (auto& [replica, f] : log.followers)
      if (f.sent + 1 == entry.lsn && !f.reading && !f.copying) ship(replica, entry, out);  // else it is catching up
  }
  batch.entries.clear();
  pipeline_.await(std::move(batch));
  release_replicated(now, out);
}

std::size_t Chat::confirmed(const PrimaryLog& log, std::uint64_t lsn) {
  std::size_t have = 0;
  for (const auto& [replica, f] : log.followers) have += f.acked >= lsn ? 1 : 0;
  return have;
}

bool Chat::update_commit(PrimaryLog& log) {
  std::uint64_t point = log.durable_lsn;
  if (fails_over(*log.config)) {
    std::vector<std::uint64_t> acked;
    for (const auto& [replica, f] : log.followers) acked.push_back(std::min(f.acked, log.durable_lsn));
    std::sort(acked.rbegin(), acked.rend());
    point = acked.size() >= log.needed && log.needed > 0 ? acked[log.needed - 1] : 0;
    if (point < log.at_start) return false;  // only an entry of its own term commits (the earlier ones with it)
  }
  if (point <= log.committed) return false;
  log.committed = point;
  show_committed(log.unseen, point);
  return true;
}

void Chat::show_committed(std::deque<Unseen>& unseen, std::uint64_t committed) {
  while (!unseen.empty() && unseen.front().lsn <= committed) {
    if (Room* room = book_.find(unseen.front().room))
      room->durable_seq = std::max(room->durable_seq, std::min(unseen.front().seq, room->last_seq));
    unseen.pop_front();
  }
}

bool Chat::replicated_enough(const Batch& batch) const {
  for (const auto& [shard, lsn] : batch.log) {
    const PrimaryLog& log = primary_logs_.at(shard);
    if (log.config->ack == router::ShardConfig::Ack::replicated && confirmed(log, lsn) < log.needed) return false;
  }
  return true;
}

std::optional<std::string> Chat::unconfirmed_since_start(const std::string& room) const {
  if (primary_logs_.empty()) return std::nullopt;
  auto it = primary_logs_.find(*shard_of(room));
  if (it == primary_logs_.end()) return std::nullopt;
  const PrimaryLog& log = it->second;
  if (log.config->ack != router::ShardConfig::Ack::replicated || confirmed(log, log.at_start) >= log.needed)
    return std::nullopt;
  return "this message is stored, but the shard's replicas have not confirmed it since the node restarted; "
         "try again";
}

void Chat::release_replicated(const Now& now, Effects& out) {
  pipeline_.release([&](const Batch& batch) { return replicated_enough(batch); },
                    [&](Batch& batch) { finish_batch(batch, now, out); });
  if (!stopping_) return;
  // Stopping: what the replicas have not confirmed is answered `unavailable`. It is
  // stored here; a retry with the same client message id after the restart gets the
  // seq it was stored with.
  for (auto& batch : pipeline_.take_awaiting())
    for (auto& op : batch.ops) {
      const std::string why = "node is stopping before enough replicas confirmed this; try again";
      fail_op(out, op, errc::unavailable, why);
    }
}

void Chat::ship(const std::string& replica, const persistence::LogEntry& entry, Effects& out) {
  auto& f = primary_logs_.at(entry.shard).followers.at(replica);
  f.sent = entry.lsn;
  ++stats_.shipped;
  out.send(peer_actor(replica),
           router::encode_peer(router::PeerKind::log_entry, entry.lsn,
                               router::encode_shipped(entry.shard, primary_logs_.at(entry.shard).term, entry.term,
                                                      term_at(seats_.at(entry.shard), entry.lsn - 1), entry.body)));
}

void Chat::catch_up(const std::string& shard, const std::string& replica, std::uint64_t after, Effects& out) {
  PrimaryLog& log = primary_logs_.at(shard);
  auto& f = log.followers.at(replica);
  f.sent = after;
  if (f.reading || f.copying || after >= log.durable_lsn) return;
  f.reading = true;
  const std::uint64_t corr = next_corr_++;
  log_reads_.emplace(corr, LogRead{shard, replica, log.term});
  out.send(options_.persistence_actor,
           store::encode(store::ReadLog{corr, shard, after, kLogPageEntries, kLogPageBytes}));
}

void Chat::on_log_page(const store::LogPage& page, Effects& out) {
  auto it = log_reads_.find(page.corr);
  if (it == log_reads_.end()) return;
  auto [shard, replica, term] = std::move(it->second);
  log_reads_.erase(it);
  auto primary = primary_logs_.find(shard);
  // No longer its primary, or its primary again in a later term: what was read then
  // may have been taken back since (a diverged tail), and is not sent.
  if (primary == primary_logs_.end() || primary->second.term != term) return;
  PrimaryLog& log = primary->second;
  auto& f = log.followers.at(replica);
  f.reading = false;
  if (page.error.code != errc::ok) {
    spdlog::error("chat: reading shard {}'s log for replica {}: {}", shard, replica, page.error.message);
    return;  // the next heartbeat tries again
  }
  if (page.trimmed) return send_copy(shard, replica, out);  // it is behind what the log keeps
  for (const auto& entry : page.entries)
    if (entry.lsn == f.sent + 1) ship(replica, entry, out);
  if (!page.entries.empty() && f.sent < log.durable_lsn) catch_up(shard, replica, f.sent, out);
}

void Chat::on_replica_report(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out) {
  std::string shard;
  std::optional<router::Kept> kept;
  if (frame.kind == router::PeerKind::kept) {
    kept = router::decode_kept(frame.body);
    if (!kept) {
      spdlog::warn("chat: unreadable report from node {}", node);
      return;
    }
    shard = kept->shard;
  } else {
    shard = frame.body;
  }
  if (kept) {
    if (auto seat = seats_.find(shard); seat != seats_.end() && seat->second.blank) {
      // Where a member's log ends, as this blank seat asked (or its own report).
      if (seat_shared_with(shard, node)) heard_while_blank(node, shard, kept->term, frame.corr, out);
      return;
    }
    if (kept->term == 0) on_blank_report(node, shard, out);  // it has nothing of the shard
  }
  auto it = primary_logs_.find(shard);
  if (it == primary_logs_.end()) return;
  PrimaryLog& log = it->second;
  auto f = log.followers.find(node);
  if (f == log.followers.end()) {
    spdlog::warn("chat: node {} reports on shard {}, which it is no replica of", node, shard);
    return;
  }
  if (kept && kept->term > log.term) {
    // A member is in a later term: another node was elected since. This one stops.
    spdlog::warn("chat: node {} is in term {} of shard {}, past this primary's term {}", node, kept->term, shard, log.term);
    return follow(shard, kept->term, "", now, out);
  }
  f->second.reported = true;
  if (f->second.copying) return;  // it takes entries again once it has installed the copy
  if (!kept) {  // a gap: it has up to frame.corr; everything after it again, from the log
    catch_up(shard, node, std::min(frame.corr, log.durable_lsn), out);
    return;
  }
  if (auto keep = diverges(shard, frame.corr, kept->last_term)) {
    // Its log ends with entries this primary does not have: it drops them first.
    f->second.sent = *keep;
    f->second.diverged = true;
    out.send(peer_actor(node), router::encode_peer(router::PeerKind::diverged, *keep, shard));
    return;
  }
  f->second.diverged = false;
  const std::uint64_t lsn = std::min(frame.corr, log.durable_lsn);
  if (lsn < f->second.acked) {
    // It has less than it said before: it lost its data (a new data directory). What it
    // confirmed before counts no more; it is brought up to date again.
    spdlog::warn("chat: replica {} of shard {} has its log up to lsn {} only, though it confirmed lsn {}", node, shard,
                 lsn, f->second.acked);
    f->second.acked = f->second.acked_at_tick = lsn;
    return catch_up(shard, node, lsn, out);
  }
  if (lsn == f->second.acked) {
    // Nothing of its log is on the way to it, and it is behind: the rest, from the log
    // (after a copy was installed there, say).
    if (lsn < log.durable_lsn && f->second.sent <= lsn && !f->second.reading) catch_up(shard, node, lsn, out);
    return;
  }
  f->second.acked = lsn;
  if (f->second.sent < lsn) f->second.sent = lsn;  // it had these already (from before a restart)
  if (lsn < log.durable_lsn && f->second.sent <= lsn && !f->second.reading) catch_up(shard, node, lsn, out);
  // The replicas of a shard that fails over show what is committed at once, not a
  // heartbeat later (the others show what they have).
  if (update_commit(log) && fails_over(*log.config))
    for (const auto& [replica, other] : log.followers)
      out.send(peer_actor(replica), primary_frame(shard, log));
  release_replicated(now, out);
  // Entries every replica has are not needed any more: trimmed now and then.
  std::uint64_t everyone = log.durable_lsn;
  for (const auto& [name, other] : log.followers) everyone = std::min(everyone, other.acked);
  if (everyone >= log.trimmed + 1024) {
    log.trimmed = everyone;
    out.send(options_.persistence_actor,
             store::encode(store::Append{kApplyBatch | next_apply_++, 0, {persistence::TrimLog{shard, everyone}}}));
  }
}

void Chat::on_log_entry(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out) {
  auto shipped = router::decode_shipped(frame.body);
  if (!shipped) {
    spdlog::warn("chat: unreadable log entry from node {}", node);
    return;
  }
  const std::string shard(shipped->shard);
  Seat* shared = seat_shared_with(shard, node);
  if (shared == nullptr) {
    spdlog::warn("chat: node {} sent an entry of shard {}, which this node is no replica of for it", node, shard);
    return;
  }
  Seat& s = *shared;
  if (s.stuck || s.truncating || s.blank) return;  // blank: it follows once the primary announces itself
  if (auto copy = copies_in_.find(shard); copy != copies_in_.end()) {
    if (copy->second.installing) return;  // entries follow the copy
    // Its primary sends no entries to a replica it is sending a copy to: that copy was
    // given up (the primary stopped being one, or its copy failed), or another primary's.
    copies_in_.erase(copy);
  }
  // The term it was written in, and the term its sender is the primary in (later, for
  // an entry of an earlier term it brings this node up to date with).
  const std::uint64_t term = shipped->term, primary_term = shipped->primary_term, lsn = frame.corr;
  // Checked before anything is done with it, its term included.
  auto records = store::decode_records(shipped->records, replicated_limits(options_.limits));
  if (!records) {
    spdlog::error("chat: entry {} of shard {} from node {} is unreadable: {}", lsn, shard, node,
                  records.error().message);
    return;
  }
  for (const auto& r : *records)
    if (const std::string* of = shard_of(room_of_record(r)); of == nullptr || *of != shard) {
      spdlog::error("chat: entry {} of shard {} from node {} holds a record of room '{}', which is not the shard's",
                    lsn, shard, node, room_of_record(r));
      return;
    }
  if (primary_term < s.term) {
    // From a primary of an earlier term: refused, and told of the term this node is in,
    // so it cannot reach a quorum and stops.
    out.send(peer_actor(node), kept_frame(shard));
    return;
  }
  if (primary_logs_.count(shard) && primary_term == s.term) {
    spdlog::critical("chat: node {} sent an entry of shard {} in term {}, in which this node is the primary", node,
                     shard, primary_term);
    return;
  }
  // The primary of its term or a later one is there: an election this node began is over
  // (as a Raft candidate steps back on hearing from a leader). Else it might win with
  // entries of the old term still being written.
  s.stage = Seat::Stage::none;
  s.granted.clear();
  // A new primary (or term; this node may have been the primary of an earlier one):
  // followed, and that stored with the entry if the entry is next, else on its own.
  const bool new_primary = primary_term > s.term || routes_.at(shard).primary != node;
  if (new_primary) follow(shard, primary_term, node, now, out, false);
  ReplicaLog& log = replica_logs_.at(shard);
  persistence::ShardVote standing{shard, s.term, s.voted_for, node};
  auto store_standing = [&] {
    const std::uint64_t id = kApplyBatch | next_apply_++;
    out.send(options_.persistence_actor, store::encode(store::Append{id, 0, {standing}}));
    applies_.emplace(id, Apply{Apply::Kind::vote, shard, 0, {}, {}, s.term});
  };
  if (lsn <= log.received) {  // had it already (or another entry there: the primary answers 'D')
    if (new_primary) store_standing();
    if (lsn <= log.durable || term_at(s, lsn) != term) send_kept(shard, out);
    return;
  }
  if (lsn != log.received + 1) {
    if (new_primary) store_standing();
    return ask_for_gap(shard, log, out);
  }
  if (term_at(s, lsn - 1) != shipped->prev_term) {
    // Its log does not end as the primary's does before this entry: it says where it
    // ends, and the primary answers where the two agree ('D').
    if (log.mismatch_logged != lsn)
      spdlog::warn("chat: entry {} of shard {} from node {} follows an entry of term {}; this node's entry {} is of "
                   "term {}: it reports where its log ends",
                   lsn, shard, node, shipped->prev_term, lsn - 1, term_at(s, lsn - 1));
    log.mismatch_logged = lsn;
    if (new_primary) store_standing();
    if (log.received == log.durable) send_kept(shard, out);
    return;
  }
  log.received = lsn;
  log.matched = lsn;  // the primary's log and this one agree up to here (the previous term's check)
  if (s.terms.empty() || s.terms.back().term != term) s.terms.push_back({term, lsn});
  store::Append append{kApplyBatch | next_apply_++, 0, std::move(*records)};
  append.records.push_back(persistence::LogEntry{shard, term, lsn, std::string(shipped->records)});
  if (new_primary) append.records.push_back(standing);
  out.send(options_.persistence_actor, store::encode(append));
  if (new_primary) append.records.pop_back();
  append.records.pop_back();  // the entry itself: the records are what the view is kept from
  applies_.emplace(append.batch, Apply{Apply::Kind::entry, shard, lsn, std::move(append.records), {}, 0});
}

void Chat::ask_for_gap(const std::string& shard, ReplicaLog& log, Effects& out) {
  if (log.gap_asked == log.received) return;  // asked already; the next heartbeat asks again
  log.gap_asked = log.received;
  out.send(peer_actor(log.primary), router::encode_peer(router::PeerKind::gap, log.received, shard));
}

void Chat::on_applied(std::uint64_t id, const Error& error, const Now& now, Effects& out) {
  auto it = applies_.find(id);
  if (it == applies_.end()) {
    if (error.code != errc::ok) spdlog::error("chat: trimming a replication log: {}", error.message);
    return;
  }
  Apply apply = std::move(it->second);
  applies_.erase(it);
  if (apply.kind == Apply::Kind::vote) {
    if (error.code != errc::ok) {
      spdlog::error("chat: a vote in shard {} not stored: {}", apply.shard, error.message);
      return;
    }
    Seat& seat = seats_.at(apply.shard);
    if (apply.candidate.empty() || seat.term != apply.term) return;  // a follow, or an election since
    if (apply.candidate != options_.cluster->self) {
      out.reply_node(apply.candidate, router::encode_peer(router::PeerKind::vote, apply.term,
                                                          router::encode_vote({apply.shard, false, true, apply.term})));
      return;
    }
    if (seat.stage != Seat::Stage::vote) return;
    // Its own vote is stored: now it asks the others.
    seat.granted.insert(options_.cluster->self);
    const auto& log = replica_logs_.at(apply.shard);
    for (const auto& member : other_members(*seat.config))
      out.send(peer_actor(member),
               router::encode_peer(router::PeerKind::vote_request, seat.term,
                                   router::encode_vote_request({apply.shard, false, term_at(seat, log.durable), log.durable})));
    return;
  }
  if (apply.kind == Apply::Kind::term_entry) {
    if (error.code != errc::ok) {
      spdlog::error("chat: the first entry of term {} of shard {} not stored: {}", apply.term, apply.shard, error.message);
      if (auto r = replica_logs_.find(apply.shard); r != replica_logs_.end())  // no longer its primary either
        r->second.received = std::min(r->second.received, r->second.durable);
      return;
    }
    auto p = primary_logs_.find(apply.shard);
    if (p == primary_logs_.end() || p->second.term != apply.term) {
      // It stopped being the primary before its term's first entry was stored: the
      // entry is in its log all the same (a tail the new primary may not have). Its
      // log's end must say so, or it would wait for that entry forever.
      if (auto r = replica_logs_.find(apply.shard); r != replica_logs_.end())
        r->second.durable = std::max(r->second.durable, apply.lsn);
      return;
    }
    PrimaryLog& log = p->second;
    log.durable_lsn = std::max(log.durable_lsn, apply.lsn);
    const persistence::LogEntry entry{apply.shard, log.term, apply.lsn, store::encode_records({})};
    for (auto& [replica, f] : log.followers)
      if (f.sent + 1 == entry.lsn && !f.reading && !f.copying) ship(replica, entry, out);
    release_replicated(now, out);
    return;
  }
  auto r = replica_logs_.find(apply.shard);
  if (r == replica_logs_.end()) return;  // it became the primary meanwhile (it waits for its entries first)
  ReplicaLog& log = r->second;
  if (error.code != errc::ok) {
    spdlog::error("chat: entry {} of shard {} not stored here: {}", apply.lsn, apply.shard, error.message);
    log.received = std::min(log.received, log.durable);  // what follows it fails too; asked again
    return;
  }
  log.durable = apply.lsn;
  ++stats_.replicated;
  apply_replicated(apply.records);
  learned(apply.shard, out);
  // Reads show its messages once the primary says the entry is committed (a shard that
  // fails over could still take it back); in other shards at once.
  const bool wait = fails_over(*seats_.at(apply.shard).config);
  for (const auto& record : apply.records)
    if (const auto* m = std::get_if<persistence::StoredMessage>(&record)) log.unseen.push_back({apply.lsn, m->room, m->seq});
  show_committed(log.unseen, wait ? std::min(log.committed, log.matched) : apply.lsn);
  send_kept(apply.shard, out);
}

void Chat::apply_replicated(const std::vector<persistence::Record>& records) {
  for (const auto& record : records) {
    book_.follow(record);
    // The retry window too: should this node become the primary, a retry of a publish
    // gets its seq, not a second copy.
    if (const auto* m = std::get_if<persistence::StoredMessage>(&record))
      if (!remembered(m->room, m->user, m->client_msg_id)) remember(m->room, m->user, m->client_msg_id, m->seq, m->ts_ms);
  }
}

void Chat::replication_tick(const Now& now, Effects& out) {
  for (auto& [shard, log] : primary_logs_) {
    for (auto& [replica, f] : log.followers) {
      // Behind, and no word from it since the last heartbeat: what it lacks, again.
      if (f.reported && !f.diverged && !f.copying && f.acked < log.durable_lsn && f.acked == f.acked_at_tick && !f.reading && health_->up(replica))
        catch_up(shard, replica, f.acked, out);
      f.acked_at_tick = f.acked;
    }
    // Every node learns who the primary is, and a node back from a restart at once.
    for (const auto& node : options_.cluster->others)
      out.send(peer_actor(node), primary_frame(shard, log));
  }
  // Each replica says where it is every heartbeat: after a restart of either side the
  // primary knows at once what to send.
  for (auto& [shard, log] : replica_logs_) {
    log.gap_asked = ~std::uint64_t{0};
    if (!log.primary.empty() && health_->up(log.primary)) send_kept(shard, out);
  }
  tell_blank(out);
  copy_tick(out);
  election_tick(out);
  expire_dedup(now);  // a replica's window, which no batch of its own expires
}

const std::string* Chat::written_room(const transport::RequestBody& request) {
  return reads_room(request) ? nullptr : room_of(request);  // every other op on a room changes it
}

bool Chat::read_here(const transport::RequestBody& request, const std::string& owner) const {
  if (!reads_room(request) || replica_logs_.empty() || (!owner.empty() && health_->up(owner))) return false;
  auto seat = seats_.find(*shard_of(*room_of(request)));
  if (seat == seats_.end() || seat->second.stuck || seat->second.blank || seat->second.learner_until != 0) return false;
  auto log = replica_logs_.find(seat->first);
  return log != replica_logs_.end() && log->second.known_committed();
}

bool Chat::vouches_for(const std::string& room) const {
  if (primary_logs_.empty() && replica_logs_.empty()) return true;
  const std::string* shard = shard_of(room);
  if (!shard) return true;
  if (auto p = primary_logs_.find(*shard); p != primary_logs_.end()) return p->second.known_committed();
  auto r = replica_logs_.find(*shard);
  return r == replica_logs_.end() || r->second.known_committed();
}

std::optional<std::string> Chat::reads_wait(const std::string& room) const {
  auto log = primary_logs_.find(*shard_of(room));
  if (log == primary_logs_.end() || log->second.known_committed()) return std::nullopt;
  return "node '" + options_.cluster->self + "' is the primary of shard '" + log->first +
         "' with a log not yet known to be committed (it restarted, or installed a copy) and serves its reads "
         "once enough of its replicas have confirmed it; try again";
}

namespace {

const char* ack_name(const router::ShardConfig& shard) {
  return shard.ack == router::ShardConfig::Ack::replicated ? "replicated" : "local";
}

}  // namespace

transport::ShardsOk Chat::local_shards() const {
  transport::ShardsOk ok;
  if (!placement_) {  // one node, one shard
    ok.shards.push_back({"default", options_.node_name, "local", 0, 0, true, {}});
    return ok;
  }
  for (const auto& [name, log] : primary_logs_) {
    transport::ShardInfo info{name, options_.cluster->self, ack_name(*log.config), log.term, log.durable_lsn, true, {}};
    for (const auto& [node, f] : log.followers) info.replicas.push_back({node, f.acked, health_->up(node)});
    ok.shards.push_back(std::move(info));
  }
  for (const auto& [name, log] : replica_logs_) {
    const Seat& seat = seats_.at(name);
    // What this replica has; the primary's own report, if it answers, says more.
    ok.shards.push_back({name, log.primary, ack_name(*seat.config), seat.term, 0, false,
                         {{options_.cluster->self, log.durable, true}}});
  }
  return ok;
}

transport::ShardsOk Chat::merge_shards(const std::map<std::string, transport::ShardsOk>& reports,
                                       std::vector<std::string> missing) const {
  auto reported = [&](const std::string& node, const std::string& shard) -> const transport::ShardInfo* {
    auto it = reports.find(node);
    if (it == reports.end()) return nullptr;
    for (const auto& s : it->second.shards)
      if (s.name == shard) return &s;
    return nullptr;
  };
  transport::ShardsOk ok;
  ok.missing = std::move(missing);
  for (const auto& shard : options_.cluster->shards) {
    // The primary knows what each replica confirmed: the report of the node that says
    // it is the primary, in the latest term any node reports.
    const transport::ShardInfo* primary = nullptr;
    for (const auto& [node, report] : reports)
      if (const auto* own = reported(node, shard.name); own && own->primary_up && own->primary == node &&
                                                          (!primary || own->term > primary->term))
        primary = own;
    if (primary) {
      ok.shards.push_back(*primary);
      continue;
    }
    std::vector<std::string> members{shard.owner};
    members.insert(members.end(), shard.replicas.begin(), shard.replicas.end());
    const std::string& route = primary_of_shard(shard.name);
    transport::ShardInfo info{shard.name, route, ack_name(shard), routes_.at(shard.name).term, 0,
                              reports.count(route) > 0 && shard.replicas.empty(), {}};
    for (const auto& node : members) {
      if (node == route) continue;
      const auto* own = reported(node, shard.name);  // else: that node did not answer
      info.replicas.push_back({node, own && !own->replicas.empty() ? own->replicas.front().lsn : 0, own != nullptr});
      if (own) info.term = std::max(info.term, own->term);
    }
    ok.shards.push_back(std::move(info));
  }
  return ok;
}

void Chat::gather_shards(const Caller& caller, std::string_view frame, const Now& now, Effects& out) {
  const std::uint64_t id = next_forward_++;
  Gather& g = gathers_[id];
  g.caller = caller;
  g.shards = true;
  ask_every_node(id, frame, now, out);
}

}  // namespace switchboard::actors
