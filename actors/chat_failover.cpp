// Failover of replicated shards (docs/REPLICATION.md).
//
// The members of a shard are its configured owner and its replicas. A shard with
// ack = replicated and at least two replicas fails over: when its primary is lost, a
// replica becomes the primary with the votes of a majority of the members, in a new
// term. Votes are stored before they are given (one per term), and only go to a
// candidate whose log is at least as far as the voter's, so the winner has every
// acknowledged write (each is on a majority). A pre-vote round first asks whether a
// majority would vote at all, so a member cut off on its own never raises the term.
//
// Every node follows each shard's primary (routes_): the primary announces itself
// ('W') every heartbeat, requests are forwarded to it, and room feeds are followed at
// it. A member refuses entries of a term older than its own, so a former primary
// cannot reach a quorum; it learns the new term and follows. Its log may end with
// entries no majority has (never acknowledged): the new primary says where the logs
// agree ('D'), and the member takes the rest back, into the `reconciled` table.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/router/peer_frames.hpp"

namespace switchboard::actors {
namespace {

/// How many replicas an acknowledgement of the shard waits for. A shard that fails
/// over waits for a majority of its members at least, so every acknowledged write is
/// on whichever member wins an election.
std::size_t needed_replicas(const router::ShardConfig& shard, bool fails_over) {
  if (!fails_over) return shard.ack_replicas;
  return std::max(shard.ack_replicas, (shard.replicas.size() + 1) / 2);
}

}  // namespace

bool Chat::fails_over(const router::ShardConfig& shard) {
  return shard.ack == router::ShardConfig::Ack::replicated && shard.replicas.size() >= 2;
}

std::vector<std::string> Chat::other_members(const router::ShardConfig& shard) const {
  std::vector<std::string> members;
  if (shard.owner != options_.cluster->self) members.push_back(shard.owner);
  for (const auto& r : shard.replicas)
    if (r != options_.cluster->self) members.push_back(r);
  return members;
}

Chat::Seat* Chat::seat_shared_with(const std::string& shard, const std::string& node) {
  auto it = seats_.find(shard);
  if (it == seats_.end()) return nullptr;
  const auto members = other_members(*it->second.config);
  return std::find(members.begin(), members.end(), node) == members.end() ? nullptr : &it->second;
}

void Chat::start_replication(const persistence::Snapshot& snapshot) {
  const std::string& self = options_.cluster->self;
  for (const auto& shard : options_.cluster->shards) {
    routes_[shard.name] = Route{0, shard.owner};
    if (shard.replicas.empty()) continue;
    if (shard.owner != self && std::find(shard.replicas.begin(), shard.replicas.end(), self) == shard.replicas.end())
      continue;
    Seat& seat = seats_[shard.name];
    seat.config = &shard;
    persistence::LogPosition at;
    if (auto it = snapshot.logs.find(shard.name); it != snapshot.logs.end()) at = it->second;
    if (auto it = snapshot.terms.find(shard.name); it != snapshot.terms.end()) seat.terms = it->second;
    else if (at.lsn > 0) seat.terms = {{at.term, 1}};  // a log from before terms were kept: one term
    const bool has_rooms = std::any_of(book_.rooms().begin(), book_.rooms().end(),
                                       [&](const auto& room) { return *shard_of(room.first) == shard.name; });
    if (fails_over(shard) && at.lsn == 0 && seat.terms.empty() && !snapshot.votes.count(shard.name) && !has_rooms) {
      // Nothing of the shard here: a new shard, or a member that lost its data directory.
      // It is no primary and no voter until it hears of one (or, the owner, until a
      // majority of the members turn out to be blank too: a new shard).
      seat.blank = true;
      // Writes go to the owner meanwhile, as on a node of no shard (the owner takes them
      // once it has started the shard); on the owner itself they wait for that.
      routes_[shard.name] = Route{0, shard.owner == self ? "" : shard.owner};
      replica_logs_[shard.name] = ReplicaLog{"", 0, 0};
      continue;
    }
    // Until any election, the owner is the primary, in term 1 (so elections begin at 2).
    std::string primary = shard.owner;
    seat.term = std::max<std::uint64_t>(1, at.term);
    if (auto it = snapshot.votes.find(shard.name); it != snapshot.votes.end()) {
      seat.term = std::max(seat.term, it->second.term);
      seat.voted_for = it->second.voted_for;
      seat.learner_until = it->second.learner_until;
      primary = it->second.primary;
    }
    routes_[shard.name] = Route{seat.term, primary};
    if (primary == self) {
      PrimaryLog& log = open_primary_log(shard.name, seat, at.lsn);
      log.restarted = fails_over(shard) && at.lsn > 0;
      if (at.lsn == 0 && has_rooms) {
        // The shard has history from before it had replicas, which no log entry holds:
        // its log begins past it (entry 1, empty, trimmed at once), so a replica
        // starts from a copy of the store.
        log.last_lsn = log.durable_lsn = log.at_start = log.trimmed = 1;
        seat.terms = {{log.term, 1}};
        for (auto& [member, f] : log.followers) f.sent = 0;  // its first report finds it behind
        log_bases_.push_back(shard.name);
      }
    } else {
      ReplicaLog& log = replica_logs_[shard.name];
      log = ReplicaLog{primary, at.lsn, at.lsn};
      if (fails_over(shard)) log.restart_lsn = at.lsn;
    }
  }
}

Chat::PrimaryLog& Chat::open_primary_log(const std::string& shard, Seat& seat, std::uint64_t lsn) {
  PrimaryLog& log = primary_logs_[shard];
  log = PrimaryLog{};
  log.config = seat.config;
  log.needed = needed_replicas(*seat.config, fails_over(*seat.config));
  log.term = seat.term;
  log.last_lsn = log.durable_lsn = log.at_start = lsn;
  for (const auto& member : other_members(*seat.config)) log.followers[member].sent = lsn;
  return log;
}

void Chat::tell_blank(Effects& out) {
  for (const auto& [shard, seat] : seats_)
    if (seat.blank)
      for (const auto& member : other_members(*seat.config)) out.send(peer_actor(member), kept_frame(shard));
}

SteadyClock::time_point Chat::next_blank_report(SteadyClock::time_point now) const {
  return now + std::max<SteadyClock::duration>(std::chrono::milliseconds(10), health_->options().heartbeat / 20);
}

std::string Chat::primary_frame(const std::string& shard, const PrimaryLog& log) const {
  return router::encode_peer(router::PeerKind::primary, log.term,
                             router::encode_primary(shard, options_.cluster->self, log.trimmed, log.committed));
}

void Chat::on_blank_report(const std::string& node, const std::string& shard, Effects& out) {
  Seat* seat = seat_shared_with(shard, node);
  if (seat == nullptr || seat->blank) return;
  // Where this node's log ends and the term it is in: what the blank member needs to know
  // whom it may follow.
  out.send(peer_actor(node), kept_frame(shard));
  if (auto p = primary_logs_.find(shard); p != primary_logs_.end()) {
    out.send(peer_actor(node), primary_frame(shard, p->second));
    return;
  }
  if (routes_.at(shard).primary == node && !seat->primary_blank) {
    seat->primary_blank = true;
    spdlog::warn("chat: node {}, the primary of shard {} as this node knows it, has nothing of the shard (its data "
                 "directory is new): it is counted as gone",
                 node, shard);
  }
}

void Chat::heard_while_blank(const std::string& node, const std::string& shard, std::uint64_t term, std::uint64_t lsn,
                             Effects& out) {
  Seat& seat = seats_.at(shard);
  auto& [their_term, their_lsn] = seat.heard[node];
  their_term = std::max(their_term, term);
  their_lsn = std::max(their_lsn, lsn);
  if (seat.config->owner != options_.cluster->self) return;
  std::size_t blank = 1;  // itself
  for (const auto& [member, said] : seat.heard) blank += said == std::pair<std::uint64_t, std::uint64_t>{0, 0} ? 1 : 0;
  if (blank >= majority(*seat.config)) bootstrap(shard, out);
}

bool Chat::may_follow_from_blank(const Seat& seat, std::uint64_t term) const {
  // An acknowledged write is on a quorum of the members (the primary and the replicas an
  // acknowledgement waits for), this member perhaps one of them: it is on one of any
  // members - quorum + 1 others. Having heard from that many, it knows the latest term
  // any of them is in: a primary of an earlier term may not know of writes acknowledged
  // since.
  const std::size_t members = seat.config->replicas.size() + 1;
  const std::size_t quorum = 1 + needed_replicas(*seat.config, true);
  if (seat.heard.size() < members - quorum + 1) return false;
  std::uint64_t latest = 0;
  for (const auto& [member, said] : seat.heard) latest = std::max(latest, said.first);
  return term >= latest;
}

bool Chat::nothing_anywhere(const Seat& seat) {
  return std::all_of(seat.heard.begin(), seat.heard.end(), [](const auto& h) { return h.second.second == 0; });
}

void Chat::bootstrap(const std::string& shard, Effects& out) {
  const std::string& self = options_.cluster->self;
  Seat& seat = seats_.at(shard);
  seat.blank = false;
  seat.heard.clear();
  seat.term = 1;
  seat.voted_for = self;
  replica_logs_.erase(shard);
  PrimaryLog& log = open_primary_log(shard, seat, 0);
  set_route(shard, seat.term, self, out);
  store_vote(shard, "", out);  // before any entry: persistence takes them in order
  for (const auto& node : options_.cluster->others)
    out.send(peer_actor(node), primary_frame(shard, log));
  spdlog::info("chat: shard {} is new (a majority of its members have nothing of it): node {} is its primary, term 1",
               shard, self);
}

void Chat::learned(const std::string& shard, Effects& out) {
  Seat& seat = seats_.at(shard);
  auto r = replica_logs_.find(shard);
  if (seat.learner_until == 0 || r == replica_logs_.end() || r->second.durable < seat.learner_until) return;
  spdlog::info("chat: shard {}: this node's log has caught up (lsn {}); it votes again", shard, r->second.durable);
  seat.learner_until = 0;
  store_vote(shard, "", out);
}

bool Chat::primary_alive(const std::string& shard, const Seat& seat) const {
  const std::string& primary = routes_.at(shard).primary;
  return !primary.empty() && health_->up(primary) && !seat.primary_blank;
}

const std::string& Chat::primary_of_shard(const std::string& shard) const { return routes_.at(shard).primary; }

bool Chat::primary_here(const std::string& room) const {
  return !placement_ || primary_of_shard(*shard_of(room)) == options_.cluster->self;
}

void Chat::set_route(const std::string& shard, std::uint64_t term, const std::string& primary, Effects& out) {
  Route& route = routes_.at(shard);
  const std::string before = route.primary;
  route = Route{term, primary};
  if (before == primary) return;
  // The room feeds this node's subscribers follow move to the new primary.
  const std::string& self = options_.cluster->self;
  for (const auto& topic : feed_topics_) {
    if (*shard_of(topic.substr(0, topic.size() - 1)) != shard) continue;
    if (!before.empty() && before != self) out.subscribe(peer_feed(before), topic, false);
    if (!primary.empty() && primary != self) out.subscribe(peer_feed(primary), topic, true);
  }
  if (!primary.empty()) spdlog::info("chat: shard {} has primary {} (term {})", shard, primary, term);
}

void Chat::drop_terms_after(Seat& seat, std::uint64_t lsn) {
  while (!seat.terms.empty() && seat.terms.back().lsn > lsn) seat.terms.pop_back();
}

std::uint64_t Chat::term_at(const Seat& seat, std::uint64_t lsn) {
  std::uint64_t term = 0;
  for (const auto& t : seat.terms) {
    if (t.lsn > lsn) break;
    term = t.term;
  }
  return lsn == 0 ? 0 : term;
}

std::optional<std::uint64_t> Chat::diverges(const std::string& shard, std::uint64_t lsn, std::uint64_t term) const {
  const PrimaryLog& log = primary_logs_.at(shard);
  const Seat& seat = seats_.at(shard);
  if (lsn == 0 || (lsn <= log.durable_lsn && term_at(seat, lsn) == term)) return std::nullopt;
  // Where they may still agree: before `lsn`, within what this node has, and not past
  // the end of `term` here. Each answer is lower than the last, so it ends.
  std::uint64_t keep = std::min(lsn - 1, log.durable_lsn);
  for (const auto& t : seat.terms)
    if (t.term > term) {
      keep = std::min(keep, t.lsn - 1);
      break;
    }
  if (lsn <= log.durable_lsn) {
    const std::uint64_t mine = term_at(seat, lsn);
    for (const auto& t : seat.terms)
      if (t.term == mine) keep = std::min(keep, t.lsn - 1);
  }
  return keep;
}

std::string Chat::kept_frame(const std::string& shard) const {
  const Seat& seat = seats_.at(shard);
  std::uint64_t lsn = 0;
  if (auto r = replica_logs_.find(shard); r != replica_logs_.end()) lsn = r->second.durable;
  else if (auto p = primary_logs_.find(shard); p != primary_logs_.end()) lsn = p->second.durable_lsn;
  return router::encode_peer(router::PeerKind::kept, lsn, router::encode_kept(shard, term_at(seat, lsn), seat.term));
}

void Chat::send_kept(const std::string& shard, Effects& out) {
  const ReplicaLog& log = replica_logs_.at(shard);
  if (!log.primary.empty()) out.send(peer_actor(log.primary), kept_frame(shard));
}

void Chat::store_vote(const std::string& shard, const std::string& answer_to, Effects& out) {
  const Seat& seat = seats_.at(shard);
  const std::uint64_t id = kApplyBatch | next_apply_++;
  out.send(options_.persistence_actor,
           store::encode(store::Append{
               id, 0,
               {persistence::ShardVote{shard, seat.term, seat.voted_for, routes_.at(shard).primary, seat.learner_until}}}));
  applies_.emplace(id, Apply{Apply::Kind::vote, shard, 0, {}, answer_to, seat.term});
}

void Chat::election_tick(Effects& out) {
  for (auto& [shard, seat] : seats_) {
    if (!fails_over(*seat.config) || primary_logs_.count(shard) || seat.stuck || seat.truncating || seat.blank ||
        seat.learner_until > 0) {
      seat.stage = Seat::Stage::none;
      continue;
    }
    if (seat.stage == Seat::Stage::none && primary_alive(shard, seat)) {
      seat.countdown = 0;
      continue;
    }
    if (seat.stage != Seat::Stage::none) {  // an election under way: election_timeout heartbeats to win it
      if (--seat.countdown > 0) continue;
      spdlog::info("chat: no majority for node {} in shard {} (term {}); it waits and tries again",
                   options_.cluster->self, shard, seat.term);
      seat.stage = Seat::Stage::none;
    }
    // The primary is gone: stand at this heartbeat or one of the next election_wait (at
    // random, so that two replicas seldom stand at once).
    if (seat.countdown == 0)
      seat.countdown = 1 + static_cast<unsigned>(rng_() % (health_->options().election_wait + 1));
    if (--seat.countdown > 0) continue;
    const ReplicaLog& log = replica_logs_.at(shard);
    if (log.received != log.durable) {  // its log is still being written: next heartbeat
      seat.countdown = 1;
      continue;
    }
    stand(shard, seat, true, out);
  }
}

void Chat::stand(const std::string& shard, Seat& seat, bool pre, Effects& out) {
  const std::string& self = options_.cluster->self;
  seat.countdown = std::max(1u, health_->options().election_timeout);
  seat.granted.clear();
  if (!pre) {
    ++stats_.elections;
    if (auto* m = options_.metrics) m->elections.Increment();
    seat.stage = Seat::Stage::vote;
    ++seat.term;
    seat.voted_for = self;
    spdlog::info("chat: node {} stands for primary of shard {} in term {}", self, shard, seat.term);
    store_vote(shard, self, out);  // the others are asked once its own vote is stored
    return;
  }
  seat.stage = Seat::Stage::pre_vote;
  seat.granted.insert(self);
  const ReplicaLog& log = replica_logs_.at(shard);
  for (const auto& member : other_members(*seat.config))
    out.send(peer_actor(member),
             router::encode_peer(router::PeerKind::vote_request, seat.term + 1,
                                 router::encode_vote_request({shard, true, term_at(seat, log.durable), log.durable})));
}

void Chat::become_primary(const std::string& shard, Effects& out) {
  const std::string& self = options_.cluster->self;
  Seat& seat = seats_.at(shard);
  const ReplicaLog replica = replica_logs_.at(shard);
  replica_logs_.erase(shard);
  seat.stage = Seat::Stage::none;
  seat.granted.clear();
  seat.countdown = 0;
  PrimaryLog& log = primary_logs_[shard];
  log = PrimaryLog{};
  log.config = seat.config;
  log.needed = needed_replicas(*seat.config, true);
  log.term = seat.term;
  // What it stored before may not be on a majority yet: retries of it wait until it is.
  log.last_lsn = log.durable_lsn = log.at_start = replica.durable;
  log.trimmed = replica.trimmed;
  // Messages of earlier terms' entries: shown once this term's first entry is committed.
  log.committed = replica.committed;
  log.unseen = std::move(replica.unseen);
  // A log of which it does not know what is committed (the node restarted, or installed
  // a copy, and heard no commit point that far since): no reads until this term's first
  // entry is committed, as a primary back from a restart.
  log.restarted = !replica.known_committed();
  for (const auto& member : other_members(*seat.config)) log.followers[member].sent = replica.durable;
  // The term begins with an entry of its own: a member whose log ends in an older term
  // past this point has entries that are not the shard's.
  const std::uint64_t lsn = ++log.last_lsn;
  seat.terms.push_back({seat.term, lsn});
  // Entries of earlier terms count as the shard's only once an entry of this term is on
  // a majority (Raft's rule): enough replicas having them is not enough, for a member
  // whose log ends in a later term than theirs could still be elected and replace them.
  // So a retry of a publish stored before waits for this entry.
  log.at_start = lsn;
  const std::uint64_t id = kApplyBatch | next_apply_++;
  set_route(shard, seat.term, self, out);
  out.send(options_.persistence_actor,
           store::encode(store::Append{id, 0,
                                       {persistence::ShardVote{shard, seat.term, self, self},
                                        persistence::LogEntry{shard, seat.term, lsn, store::encode_records({})}}}));
  applies_.emplace(id, Apply{Apply::Kind::term_entry, shard, lsn, {}, {}, seat.term});
  ++stats_.promotions;
  if (auto* m = options_.metrics) m->promotions.Increment();
  for (const auto& node : options_.cluster->others)
    out.send(peer_actor(node), primary_frame(shard, log));
  spdlog::warn("chat: node {} is the primary of shard {} now (term {}, its log from lsn {})", self, shard, seat.term, lsn);
}

void Chat::follow(const std::string& shard, std::uint64_t term, const std::string& primary, const Now& now,
                  Effects& out, bool store) {
  Seat& seat = seats_.at(shard);
  const bool later = term > seat.term;
  if (later) {
    seat.term = term;
    seat.voted_for.clear();
  }
  seat.stage = Seat::Stage::none;
  seat.granted.clear();
  seat.countdown = 0;
  if (auto p = primary_logs_.find(shard); p != primary_logs_.end()) {
    PrimaryLog log = std::move(p->second);
    primary_logs_.erase(p);
    ReplicaLog& replica = replica_logs_[shard];
    replica = ReplicaLog{primary, log.last_lsn, log.durable_lsn};
    replica.trimmed = log.trimmed;
    replica.committed = log.committed;
    replica.unseen = std::move(log.unseen);
    if (!log.known_committed()) replica.restart_lsn = log.at_start;
    // Its messages that waited for replicas are stored here: shown once the new primary
    // says they are committed (or never, if they are taken back).
    for (const auto& batch : pipeline_.awaiting_batches()) note_unseen(batch, shard, replica.unseen);
    ++stats_.step_downs;
    if (auto* m = options_.metrics) m->step_downs.Increment();
    spdlog::warn("chat: node {} is no longer the primary of shard {}: term {} has {}", options_.cluster->self, shard,
                 term, primary.empty() ? std::string("another") : "primary " + primary);
    end_copies(shard, out);
    // What waits for replicas there will never be confirmed in the old term.
    for (auto& batch : pipeline_.awaiting_batches()) drop_shard_ops(batch, shard, out);
    release_replicated(now, out);
  } else if (ReplicaLog& replica = replica_logs_.at(shard); replica.primary != primary || later) {
    replica.primary = primary;
    replica.matched = 0;  // nothing of its log is known to be the new primary's yet
    seat.primary_blank = false;
  }
  set_route(shard, term, primary, out);
  if (store) store_vote(shard, "", out);
}

void Chat::note_unseen(const Batch& batch, const std::string& shard, std::deque<Unseen>& unseen) {
  auto entry = std::find_if(batch.log.begin(), batch.log.end(), [&](const auto& e) { return e.first == shard; });
  if (entry == batch.log.end()) return;
  for (const auto& op : batch.ops) {
    if (op.answered) continue;
    if (const auto* p = std::get_if<transport::Publish>(&op.request); p && *shard_of(p->room) == shard)
      if (const auto* ok = std::get_if<transport::PublishOk>(&op.reply)) unseen.push_back({entry->second, p->room, ok->seq});
    if (const auto* b = std::get_if<transport::PublishBatch>(&op.request); b && *shard_of(b->room) == shard)
      if (const auto* ok = std::get_if<transport::PublishBatchOk>(&op.reply))
        for (std::size_t i = 0; i < op.items.size(); ++i)
          if (op.items[i].fresh != kNoClaim) unseen.push_back({entry->second, b->room, ok->results[i].seq});
  }
}

void Chat::drop_shard_ops(Batch& batch, const std::string& shard, Effects& out) {
  std::erase_if(batch.log, [&](const auto& entry) { return entry.first == shard; });
  for (auto& op : batch.ops) {
    const std::string* room = room_of(op.request);
    if (op.answered || room == nullptr || *shard_of(*room) != shard) continue;
    const std::string why =
        "node '" + options_.cluster->self + "' is no longer the primary of shard '" + shard + "'; try again";
    const auto* ok = std::get_if<transport::PublishOk>(&op.reply);
    if (auto* batch_ok = std::get_if<transport::PublishBatchOk>(&op.reply); batch_ok && !op.items.empty()) {
      // Stored here, as for a single publish below: each fresh item is remembered.
      const auto& b = std::get<transport::PublishBatch>(op.request);
      for (std::size_t i = 0; i < op.items.size(); ++i) {
        if (op.items[i].fresh == kNoClaim) continue;
        stored(op.items[i].fresh, b.room, batch_ok->results[i].seq, batch_ok->results[i].ts_ms, Now{}, out,
               Error{errc::unavailable, why});
      }
      op.items.clear();
      reply_error(out, op.caller, errc::unavailable, why);
    } else if (op.publication != kNoClaim && ok) {
      // Stored here (the batch is durable): the next primary may well have it too. A
      // retry that finds this node the primary again gets its seq, not a second copy;
      // if it is taken back instead, it is forgotten then (on_truncated).
      reply_error(out, op.caller, errc::unavailable, why);
      stored(op.publication, ok->room, ok->seq, ok->ts_ms, Now{}, out, Error{errc::unavailable, why});
    } else {
      fail_op(out, op, errc::unavailable, why);
    }
    op.publication = kNoClaim;
    op.answered = true;
  }
}

void Chat::on_replication(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out) {
  switch (frame.kind) {
    case router::PeerKind::log_entry: return on_log_entry(node, frame, now, out);
    case router::PeerKind::kept:
    case router::PeerKind::gap: return on_replica_report(node, frame, now, out);
    case router::PeerKind::diverged: return on_diverged(node, frame, out);
    case router::PeerKind::vote_request: return on_vote_request(node, frame, out);
    case router::PeerKind::vote: return on_vote(node, frame, out);
    case router::PeerKind::primary: return on_primary(node, frame, now, out);
    case router::PeerKind::copy: return on_copy_request(node, frame, out);
    case router::PeerKind::chunk: return on_chunk(node, frame, out);
    case router::PeerKind::had: return on_had(node, frame, out);
    default: return;  // a pong: the caller noted it heard from the node
  }
}

void Chat::on_vote_request(const std::string& node, const router::PeerFrame& frame, Effects& out) {
  auto request = router::decode_vote_request(frame.body);
  if (!request) {
    spdlog::warn("chat: unreadable vote request from node {}", node);
    return;
  }
  const std::string shard(request->shard);
  Seat* shared = seat_shared_with(shard, node);
  if (shared == nullptr) {
    if (seats_.count(shard)) spdlog::warn("chat: node {} asks for a vote in shard {}, of which it is no member", node, shard);
    return;
  }
  Seat& seat = *shared;
  const std::uint64_t term = frame.corr;
  auto answer = [&](bool granted) {
    out.reply_node(node, router::encode_peer(router::PeerKind::vote, term,
                                             router::encode_vote({shard, request->pre, granted, seat.term})));
  };
  // The primary, or a member that still hears from it, does not help depose it; a member
  // with nothing of the shard, or still catching up, cannot judge a candidate's log.
  const std::string& primary = routes_.at(shard).primary;
  if (seat.truncating || seat.blank || seat.learner_until > 0 || primary_logs_.count(shard) ||
      (primary != node && primary_alive(shard, seat)))
    return answer(false);
  const ReplicaLog& log = replica_logs_.at(shard);
  if (std::pair{request->last_term, request->last_lsn} < std::pair{term_at(seat, log.durable), log.durable})
    return answer(false);  // its log is behind this one: it may lack acknowledged writes
  // Two members that stand at the same heartbeat with logs as far along would split the
  // votes (each votes for itself): in a pre-vote, the one whose name comes first goes on.
  if (request->pre && seat.stage == Seat::Stage::pre_vote && term == seat.term + 1 &&
      std::pair{request->last_term, request->last_lsn} == std::pair{term_at(seat, log.durable), log.durable} &&
      options_.cluster->self < node)
    return answer(false);
  if (request->pre) return answer(term > seat.term);
  if (term < seat.term || (term == seat.term && !seat.voted_for.empty() && seat.voted_for != node))
    return answer(false);
  if (term == seat.term && seat.voted_for == node) return answer(true);  // asked again
  seat.term = term;
  seat.voted_for = node;
  seat.stage = Seat::Stage::none;
  seat.countdown = 0;
  store_vote(shard, node, out);  // answered once stored
}

void Chat::on_vote(const std::string& node, const router::PeerFrame& frame, Effects& out) {
  auto vote = router::decode_vote(frame.body);
  if (!vote) {
    spdlog::warn("chat: unreadable vote from node {}", node);
    return;
  }
  const std::string shard(vote->shard);
  auto it = seats_.find(shard);
  if (it == seats_.end() || primary_logs_.count(shard) || it->second.blank) return;
  Seat& seat = it->second;
  if (vote->term > seat.term && !vote->granted) {
    // The voter is in a later term: this node catches up, and asks for the one after.
    seat.term = vote->term;
    seat.voted_for.clear();
    seat.stage = Seat::Stage::none;
    store_vote(shard, "", out);
    return;
  }
  if (!vote->granted) return;
  if (vote->pre ? seat.stage != Seat::Stage::pre_vote || frame.corr != seat.term + 1
                : seat.stage != Seat::Stage::vote || frame.corr != seat.term)
    return;  // an answer to an election this node has given up
  seat.granted.insert(node);
  if (seat.granted.size() < majority(*seat.config)) return;
  if (vote->pre) {
    if (const ReplicaLog& log = replica_logs_.at(shard); log.received != log.durable) {
      seat.stage = Seat::Stage::none;  // entries still being written since it asked: it asks again later
      return;
    }
    return stand(shard, seat, false, out);
  }
  become_primary(shard, out);
}

void Chat::on_primary(const std::string& node, const router::PeerFrame& frame, const Now& now, Effects& out) {
  auto announced = router::decode_primary(frame.body);
  if (!announced || announced->node != node) {
    spdlog::warn("chat: unreadable primary announcement from node {}", node);
    return;
  }
  const std::string shard(announced->shard);
  auto route = routes_.find(shard);
  if (route == routes_.end()) return;
  const std::uint64_t term = frame.corr;
  if (auto it = seats_.find(shard); it != seats_.end()) {
    Seat& seat = it->second;
    if (seat.blank) {
      // Back with nothing (or new): it follows a primary it can trust to have every
      // acknowledged write, and learns until it has what that primary has committed,
      // which may hold acknowledged writes no other voter has.
      if (!may_follow_from_blank(seat, term)) return;
      // None of the members it heard from has an entry: nothing was ever acknowledged, so
      // it votes at once. Else it learns up to the first commit point its primary
      // announces (entries it takes count towards it).
      seat.learner_until = nothing_anywhere(seat) ? 0 : kLearnsUntilCommitted;
      seat.blank = false;
      seat.heard.clear();
      if (seat.learner_until > 0)
        spdlog::warn("chat: shard {}: this node has nothing of it; it follows primary {} (term {}) and learns before "
                     "it votes",
                     shard, node, term);
    }
    if (seat.learner_until == kLearnsUntilCommitted && announced->committed > 0 && term >= seat.term &&
        (term > seat.term || route->second.primary == node)) {
      seat.learner_until = announced->committed;
      spdlog::info("chat: shard {}: this node learns up to lsn {} before it votes", shard, seat.learner_until);
      if (term == seat.term && route->second.primary == node) {
        store_vote(shard, "", out);  // else with the follow below
        learned(shard, out);         // it may have that far already
      }
    }
    if (route->second.primary == node) seat.primary_blank = false;  // it announces itself: not blank
    if (term < seat.term) {  // a primary of an earlier term: told of this one, so it stops
      out.send(peer_actor(node), kept_frame(shard));
      return;
    }
    if (primary_logs_.count(shard) && term == seat.term) {
      spdlog::critical("chat: node {} says it is the primary of shard {} in term {}, as this node is", node, shard, term);
      return;
    }
    if (term > seat.term || route->second.primary != node) {
      follow(shard, term, node, now, out);
      learned(shard, out);  // a learner that has as far as its new primary says already
    }
    // Reads here show what the primary says is committed (as far as this node has it).
    if (auto log = replica_logs_.find(shard); log != replica_logs_.end() && log->second.primary == node &&
                                              announced->committed > log->second.committed) {
      log->second.committed = announced->committed;
      show_committed(log->second.unseen, std::min(announced->committed, log->second.matched));
    }
    // Its copy of the log is trimmed as the primary's is: up to where every member has
    // it, so whichever member is elected next can bring any other up to date.
    if (auto log = replica_logs_.find(shard); log != replica_logs_.end() && announced->trimmed > log->second.trimmed &&
                                              announced->trimmed <= log->second.durable) {
      log->second.trimmed = announced->trimmed;
      out.send(options_.persistence_actor,
               store::encode(store::Append{kApplyBatch | next_apply_++, 0,
                                           {persistence::TrimLog{shard, announced->trimmed}}}));
    }
    return;
  }
  if (term < route->second.term || (term == route->second.term && route->second.primary == node)) return;
  set_route(shard, term, node, out);
}

void Chat::on_diverged(const std::string& node, const router::PeerFrame& frame, Effects& out) {
  const std::string shard(frame.body);
  auto seat = seats_.find(shard);
  auto log = replica_logs_.find(shard);
  if (seat == seats_.end() || log == replica_logs_.end() || log->second.primary != node || seat->second.truncating ||
      seat->second.stuck)
    return;
  const std::uint64_t keep = frame.corr;
  if (log->second.durable <= keep) return send_kept(shard, out);
  if (log->second.received != log->second.durable) return;  // its writes settle first; it reports again
  seat->second.truncating = true;
  const std::uint64_t corr = next_corr_++;
  truncations_.emplace(corr, std::pair{shard, keep});
  spdlog::warn("chat: shard {}: this node's log after lsn {} (to {}) is not the primary's; taking it back", shard, keep,
               log->second.durable);
  out.send(options_.persistence_actor, store::encode(store::Truncate{corr, shard, keep}));
}

void Chat::on_truncated(const store::Truncated& done, Effects& out) {
  auto it = truncations_.find(done.corr);
  if (it == truncations_.end()) return;
  const auto [shard, keep] = it->second;
  truncations_.erase(it);
  Seat& seat = seats_.at(shard);
  seat.truncating = false;
  if (done.error.code != errc::ok) {
    seat.stuck = true;
    spdlog::critical("chat: shard {}: this node's log after lsn {} is not the primary's and could not be taken back: "
                     "{}. The node holds the shard (no reads, no votes, no entries) and asks the primary for a copy "
                     "of its store (docs/REPLICATION.md)",
                     shard, keep, done.error.message);
    return;
  }
  ReplicaLog& log = replica_logs_.at(shard);
  drop_terms_after(seat, keep);
  log.received = log.durable = keep;
  log.restart_lsn = std::min(log.restart_lsn, keep);
  std::erase_if(log.unseen, [&](const Unseen& u) { return u.lsn > keep; });  // taken back: never shown
  log.gap_asked = ~std::uint64_t{0};
  for (const auto& m : done.reconciled) {  // newest first
    if (Room* room = book_.find(m.room)) {
      room->last_seq = m.seq - 1;
      room->durable_seq = std::min(room->durable_seq, m.seq - 1);
    }
    // Forgotten if it is this message (the same publish may be stored at another seq).
    forget_publication(m.room, m.user, m.client_msg_id, m.seq);
  }
  stats_.reconciled += done.reconciled.size();
  if (auto* m = options_.metrics) m->reconciled.Increment(static_cast<double>(done.reconciled.size()));
  spdlog::warn("chat: shard {}: {} message(s) this node stored but no majority had are in its reconciled table now; "
               "its log goes on after lsn {}",
               shard, done.reconciled.size(), keep);
  send_kept(shard, out);
}

void Chat::forget_publication(const std::string& room, const std::string& user, const std::string& client_msg_id,
                              std::uint64_t seq) {
  if (auto key = dedup_key(room, user, client_msg_id, false)) dedup_.erase(*key, seq);
}

}  // namespace switchboard::actors
