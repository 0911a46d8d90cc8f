#include "switchboard/actors/chat.hpp"
#include "switchboard/actors/webhook/webhook_frames.hpp"
#include "switchboard/actors/chat/room_events.hpp"
#include "switchboard/common/event_rooms.hpp"

#include "switchboard/common/utf8.hpp"
#include "switchboard/transport/ops.hpp"

#include <algorithm>
#include <random>

#include <spdlog/spdlog.h>

#include "switchboard/actors/grants.hpp"
#include "switchboard/actors/membership.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/common/message_map.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/router/peer_frames.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {
namespace {

/// The requests that change rooms and their members, batched like publishes (the op
/// table's batched ops but the publishes, which have handlers of their own).
template <class T>
constexpr bool is_room_change = transport::traits_of<T>.batched && !std::is_same_v<T, transport::Publish> &&
                                !std::is_same_v<T, transport::PublishBatch>;

std::size_t record_bytes(const transport::RequestBody& request) {
  if (const auto* p = std::get_if<transport::Publish>(&request)) return p->body.size() + 64;
  if (const auto* b = std::get_if<transport::PublishBatch>(&request)) {
    std::size_t bytes = 0;
    for (const auto& item : b->items) bytes += item.body.size() + 64;
    return bytes;
  }
  if (const auto* b = std::get_if<transport::ImportBatch>(&request)) {
    std::size_t bytes = 0;
    for (const auto& item : b->items) bytes += item.body.size() + item.user.size() + 64;
    return bytes;
  }
  return 64;
}

std::size_t record_count(const transport::RequestBody& request) {
  if (const auto* b = std::get_if<transport::PublishBatch>(&request)) return b->items.size();
  if (const auto* b = std::get_if<transport::ImportBatch>(&request)) return b->items.size();
  if (std::holds_alternative<transport::TrimHistory>(request)) return RoomBook::kMaxTrim / 10;  // its deletes weigh too
  return 1;
}

}  // namespace

Chat::Chat(ChatOptions options, const persistence::Snapshot& snapshot)
    : options_(std::move(options)),
      book_(options_.limits.max_rooms_per_user,
            {options_.limits.retention_max_age_s, options_.limits.retention_max_messages,
             options_.limits.retention_default_age_s, options_.limits.retention_default_messages}),
      heads_(options_.node_name, options_.heads_interval, options_.heads_keepalive),
      pipeline_({options_.max_batch_records, options_.max_batch_bytes, options_.max_batches_in_flight}) {
  if (options_.cluster) placement_.emplace(options_.cluster->shards);
  // Numbers for requests sent to other nodes and services start at random, so a late
  // answer to this node's previous process (it kept its routing id) matches nothing.
  std::random_device device;
  std::mt19937 seeded(options_.seed ? *options_.seed : device());
  auto random = [&]() -> std::uint32_t { return options_.seed ? static_cast<std::uint32_t>(seeded()) : device(); };
  next_forward_ = ((std::uint64_t{random()} << 32 | random()) >> 2) + 1;
  rng_.seed(random());
  for (const auto& [name, state] : snapshot.rooms) book_.load(name, state);
  if (options_.cluster) start_replication(snapshot);
  std::vector<const persistence::RecentPublish*> recent;
  for (const auto& r : snapshot.recent) recent.push_back(&r);
  std::stable_sort(recent.begin(), recent.end(), [](auto* a, auto* b) { return a->ts_ms < b->ts_ms; });
  for (const auto* r : recent)
    if (!remembered(r->room, r->user, r->client_msg_id)) remember(r->room, r->user, r->client_msg_id, r->seq, r->ts_ms);
}

std::optional<DedupTable::Key> Chat::dedup_key(const std::string& room, const std::string& user,
                                                const std::string& client_msg_id, bool number) {
  auto number_of = [number](std::unordered_map<std::string, std::uint32_t>& ids,
                            const std::string& name) -> std::optional<std::uint32_t> {
    if (auto it = ids.find(name); it != ids.end()) return it->second;
    if (!number) return std::nullopt;
    const auto id = static_cast<std::uint32_t>(ids.size() + 1);
    ids.emplace(name, id);
    return id;
  };
  auto room_id = number_of(dedup_rooms_, room);
  auto user_id = room_id ? number_of(dedup_users_, user) : std::nullopt;
  if (!user_id) return std::nullopt;
  return DedupTable::Key{*room_id, *user_id, client_msg_id};
}

void Chat::remember(const std::string& room, const std::string& user, const std::string& client_msg_id,
                    std::uint64_t seq, std::uint64_t ts_ms) {
  dedup_.insert(*dedup_key(room, user, client_msg_id, true), seq, ts_ms);
}

std::optional<DedupTable::Seen> Chat::remembered(const std::string& room, const std::string& user,
                                                 const std::string& client_msg_id) {
  auto key = dedup_key(room, user, client_msg_id, false);
  return key ? dedup_.find(*key) : std::nullopt;
}

void Chat::stored(PubClaim publication, const std::string& room, std::uint64_t seq, std::uint64_t ts_ms,
                  const Now& now, Effects& out, const std::optional<Error>& retries_fail) {
  dedup_.settle(publication, seq, ts_ms);
  auto retries = retries_.find(publication);
  if (retries == retries_.end()) return;
  for (const auto& c : retries->second) {  // retries of it that came meanwhile, one by one
    if (retries_fail) {
      reply_error(out, c, retries_fail->code, retries_fail->message);
      continue;
    }
    reply(out, c, transport::PublishOk{room, seq, ts_ms, true});
    if (auto* m = options_.metrics) m->publish_ack.observe(now.steady - c.received);
  }
  retries_.erase(retries);
}

void Chat::on_start(const std::vector<std::string>&, const std::vector<std::string>& publish, const Now& now,
                    Effects& out) {
  pub_endpoints_ = publish;
  for (const auto& shard : log_bases_) {
    const persistence::LogEntry base{shard, primary_logs_.at(shard).term, 1, store::encode_records({})};
    out.send(options_.persistence_actor,
             store::encode(store::Append{kApplyBatch | next_apply_++, 0, {base, persistence::TrimLog{shard, 1}}}));
  }
  log_bases_.clear();
  out.start_timer(kHeadsTimer, now.steady + heads_.interval());
  out.start_timer(kRetentionTimer, now.steady + options_.retention_interval);
  if (options_.cluster) {
    started_ = now.steady;
    health_.emplace(options_.cluster->others, options_.cluster->peers, now.steady);
    heartbeat(now, out);
    // A blank member says so more often than every heartbeat: a new shard starts as soon
    // as a majority of its members are up and connected.
    if (std::any_of(seats_.begin(), seats_.end(), [](const auto& s) { return s.second.blank; }))
      out.start_timer(kBlankTimer, next_blank_report(now.steady));
  }
}

bool Chat::ahead(const Inbound& in) const {
  // A read answers from what is stored, and a write is stored before its reply: a read
  // sent before a write's reply may show the state before it whether it passes the
  // write or not. Not with a publish hook, which keeps whatever a caller sends after a
  // publish behind it. Frames too large to be a read, or without a read's name in
  // them, are not parsed here.
  if (options_.hook || in.frames.size() != 1) return false;
  const std::string_view frame = in.frames[0];
  if (frame.size() > 512 ||
      (frame.find("history") == std::string_view::npos && frame.find("last_seq") == std::string_view::npos))
    return false;
  auto map = transport::unpack_map(frame, options_.limits);
  if (!map) return false;
  const MsgpackNode* op = transport::FieldReader(map->root()).find("op");
  return op != nullptr && op->is(MsgpackType::str) && (op->view() == "history" || op->view() == "last_seq");
}

bool Chat::idle() const {
  return pipeline_.idle() && applies_.empty() && reads_.empty() && forwards_.empty() && checks_.empty();
}

void Chat::send_frame(Effects& out, const Caller& to, std::string frame) {
  if (to.peer.empty() && !to.node) return;  // chat's own request (its retention's trims): nobody to answer
  if (to.node) out.reply_node(to.peer, router::encode_peer(router::PeerKind::reply, to.corr, frame));
  else out.reply(to.peer, std::move(frame));
}

void Chat::reply(Effects& out, const Caller& to, transport::ReplyBody body) {
  if (auto* m = options_.metrics) {
    m->messages.sent(body.index());
    if (const auto* error = std::get_if<transport::ErrorReply>(&body)) m->messages.error(error->code);
  }
  send_frame(out, to, transport::encode_reply(transport::Reply{to.request_id, std::move(body)}));
}

void Chat::reply_error(Effects& out, const Caller& to, errc code, std::string message) {
  ++stats_.rejected;
  reply(out, to, transport::ErrorReply{code, std::move(message)});
}

void Chat::fail_publication(Effects& out, PubClaim publication, errc code, const std::string& message) {
  if (auto retries = retries_.find(publication); retries != retries_.end()) {
    for (const auto& c : retries->second) reply_error(out, c, code, message);
    retries_.erase(retries);
  }
  dedup_.drop(publication);
}

std::uint64_t Chat::release_mark(Pending& op) {
  const std::uint64_t mark = op.mark.value_or(0);
  if (op.mark) rules_.unmark(*op.mark);
  op.mark.reset();
  return mark;
}

void Chat::fail_op(Effects& out, Pending& op, errc code, const std::string& message) {
  release_mark(op);
  if (op.publication != kNoClaim) {
    fail_publication(out, op.publication, code, message);
    op.publication = kNoClaim;
  }
  for (auto& item : op.items)
    if (item.fresh != kNoClaim) {
      fail_publication(out, item.fresh, code, message);  // and the retries that wait on it
      item.fresh = kNoClaim;
    }
  op.items.clear();
  if (const auto* t = std::get_if<transport::TrimHistory>(&op.request); t && op.caller.peer.empty() && !op.caller.node)
    on_own_trim(t->room, false, {}, Now{}, out);
  reply_error(out, op.caller, code, message);
}

void Chat::on_message(const Inbound& in, const Now& now, Effects& out) {
  switch (in.via) {
    case Inbound::Via::peer:
      if (in.frames.size() != 1) {
        spdlog::error("chat: {}-frame message from {}", in.frames.size(), in.sender);
      } else if (in.sender == options_.persistence_actor ||
                 (!options_.reader_actor.empty() && in.sender == options_.reader_actor)) {
        on_store_reply(in.frames[0], now, out);
      } else if (in.sender.starts_with('@')) {
        on_peer_reply(std::string(in.sender.substr(1)), in.frames[0], now, out);
      } else if (in.sender.starts_with('$')) {
        on_service_message(std::string(in.sender.substr(1)), in.frames[0], false, now, out);
      }
      return;
    case Inbound::Via::node: return on_node_message(in, now, out);
    case Inbound::Via::undeliverable:
    case Inbound::Via::queue_full:
      if (in.sender.starts_with('@') && in.frames.empty() && in.via == Inbound::Via::undeliverable)
        return on_peer_gone(std::string(in.sender.substr(1)), out);
      if (in.sender.starts_with('@') && in.frames.size() == 1)
        on_undeliverable(std::string(in.sender.substr(1)), in.frames[0], in.via == Inbound::Via::queue_full, out);
      if (in.sender.starts_with('$') && in.frames.size() == 1)
        on_service_message(std::string(in.sender.substr(1)), in.frames[0], true, now, out);
      return;
    case Inbound::Via::feed: return on_feed(std::string(in.sender), in, out);
    case Inbound::Via::subscription:
      if (in.frames.size() == 1) on_subscription(in.frames[0], out);
      return;
    case Inbound::Via::internal:  // only the webhook sender sends there
      if (in.frames.size() == 1) on_webhook_frame(in.frames[0], out);
      return;
    case Inbound::Via::mailbox: break;
  }
  Caller caller{std::string(in.sender), 0};
  if (in.frames.size() != 1) {
    if (auto* m = options_.metrics) m->messages.received(m->unreadable());
    reply_error(out, caller, errc::bad_frame,
                "a request is exactly one frame; got " + std::to_string(in.frames.size()));
    return;
  }
  const router::Grant* grant = nullptr;
  if (!in.client.empty())
    if (auto g = options_.grants.find(in.client); g != options_.grants.end()) grant = &g->second;
  on_request(std::move(caller), in.frames[0], now, out, grant);
}

void Chat::on_request(Caller caller, std::string_view frame, const Now& now, Effects& out,
                      const router::Grant* grant) {
  auto decoded = transport::decode_request(frame, options_.limits);
  caller.request_id = decoded.id;
  caller.received = now.steady;
  if (auto* m = options_.metrics) m->messages.received(decoded.body ? decoded.body->index() : m->unreadable());
  if (!decoded.body) {
    reply_error(out, caller, decoded.body.error().code, decoded.body.error().message);
    return;
  }
  if (grant)
    if (auto refused = check_grant(*grant, *decoded.body, decoded.as))
      return reply_error(out, caller, refused->code, std::move(refused->message));
  if (stopping_) {
    reply_error(out, caller, errc::unavailable, "node is shutting down");
    return;
  }
  if (placement_) {
    if (const std::string* owner = owner_elsewhere(*decoded.body); owner && !read_here(*decoded.body, *owner)) {
      if (owner->empty())
        return reply_error(out, caller, errc::unavailable,
                           "shard '" + *shard_of(*room_of(*decoded.body)) +
                               "' has no primary at the moment (its members are electing one); try again");
      if (caller.node)  // never forwarded twice: the nodes disagree on where the room is
        return reply_error(out, caller, errc::unavailable,
                           "node '" + options_.cluster->self + "' does not take writes for this room; node '" +
                               *owner + "' does, as this node knows it (the shard's primary changed, or the nodes' "
                               "topology files differ); try again");
      return forward(*owner, caller, frame, 0, now, out);
    }
    if (reads_room(*decoded.body))
      if (auto why = reads_wait(*room_of(*decoded.body))) return reply_error(out, caller, errc::unavailable, std::move(*why));
    if (const auto* list = std::get_if<transport::ListRooms>(&*decoded.body); list && !caller.node)
      return gather_rooms(caller, *list, decoded.as, frame, now, out);
    if (std::holds_alternative<transport::ListShards>(*decoded.body) && !caller.node)
      return gather_shards(caller, frame, now, out);
    if (const std::string* room = written_room(*decoded.body))
      if (auto why = replicas_missing(*room)) return reply_error(out, caller, errc::unavailable, std::move(*why));
  }
  // A private room is answered as if it did not exist to anyone asking as a non-member.
  auto find_visible = [&](const std::string& name) -> const Room* {
    if (const Room* room = book_.find_visible(name, decoded.as)) return room;
    reply_error(out, caller, errc::no_such_room, "no room named '" + name + "'");
    return nullptr;
  };
  auto queue_op = [&](transport::RequestBody&& request) {
    enqueue(Pending{std::move(caller), std::move(request), kNoClaim, {}, {}, decoded.as}, frame, now, out);
  };

  std::visit(
      Overloaded{
          [&](const transport::Hello&) {
            reply(out, caller,
                  transport::HelloOk{transport::kProtocolVersion, options_.node_name, pub_endpoints_,
                                     options_.limits.max_body, options_.presence_endpoints,
                                     options_.presence_pub_endpoints, options_.limits.max_publish_batch});
          },
          [&](const transport::Ping&) { reply(out, caller, transport::PingOk{}); },
          [&](const transport::ListShards&) { reply(out, caller, local_shards()); },
          [&](const transport::Backup& r) {
            if (decoded.as)
              return reply_error(out, caller, errc::forbidden,
                                 "a backup holds every room and user of the node: ask for it without 'as'");
            if (options_.reader_actor.empty() || caller.node)
              return reply_error(out, caller, errc::unavailable, "this node makes no backups");
            const std::uint64_t corr = next_corr_++;
            reads_.emplace(corr, caller);
            out.send(options_.reader_actor, store::encode(store::BackupRead{corr, caller.request_id,
                                                                            r.backup.value_or(0), r.offset,
                                                                            caller.peer}));
          },
          [&](const transport::ListRooms& r) {
            transport::RoomsOk ok = local_rooms(r, decoded.as);
            RoomBook::page_summaries(ok, r, RoomBook::summarized(r, decoded.as));
            reply(out, caller, std::move(ok));
          },
          [&](const transport::Members& r) {
            const Room* room = find_visible(r.room);
            if (!room) return;
            transport::MembersOk ok;
            for (const auto& [user, role] : room->members) {
              ok.members.push_back(user);
              ok.roles.push_back(role);
            }
            reply(out, caller, std::move(ok));
          },
          [&](const transport::ReadMarkers& r) {
            auto markers = book_.read_markers(r.room, decoded.as);
            if (!markers) return reply_error(out, caller, markers.error().code, markers.error().message);
            reply(out, caller, std::move(*markers));
          },
          [&](const transport::LastSeq& r) {
            if (const Room* room = find_visible(r.room)) reply(out, caller, transport::LastSeqOk{r.room, room->durable_seq});
          },
          [&](const transport::History& r) {
            if (const Room* room = find_visible(r.room)) read_history(caller, r, *room, decoded.as, out);
          },
          [&](transport::Publish&& p) {
            if (decoded.as && *decoded.as != p.user)
              return reply_error(out, caller, errc::forbidden,
                                 "'" + *decoded.as + "' may not publish as '" + p.user + "'");
            // One lookup in the retry window: a retry is found (stored, or on its way), a
            // new publish is claimed there at once.
            auto claimed = dedup_.claim(*dedup_key(p.room, p.user, p.client_msg_id, true), now.wall_ms);
            if (claimed.found) {
              ++stats_.duplicates;
              if (claimed.found->on_its_way) {  // answered with the original's seq once it is stored
                retries_[claimed.claim].push_back(caller);
                return;
              }
              if (auto why = unconfirmed_since_start(p.room)) return reply_error(out, caller, errc::unavailable, *why);
              reply(out, caller, transport::PublishOk{p.room, claimed.found->seq, claimed.found->ts_ms, true});
              if (auto* m = options_.metrics) m->publish_ack.observe(0.0);  // answered as it arrived
              return;
            }
            enqueue(Pending{std::move(caller), std::move(p), claimed.claim, {}, {}, decoded.as}, frame, now, out);
          },
          [&](transport::PublishBatch&& b) {
            if (decoded.as && *decoded.as != b.user)
              return reply_error(out, caller, errc::forbidden,
                                 "'" + *decoded.as + "' may not publish as '" + b.user + "'");
            // Each item is a publish of its own: new ones are claimed in the retry window
            // now, so that a retry of one (in this frame or another) is answered with its
            // seq. The room and user are numbered once for the frame.
            Pending op{std::move(caller), {}, kNoClaim, {}, {}, decoded.as};
            op.items.reserve(b.items.size());
            std::size_t fresh = 0;
            DedupTable::Key key = *dedup_key(b.room, b.user, {}, true);
            for (const auto& item : b.items) {
              key.client_msg_id = item.client_msg_id;
              auto claimed = dedup_.claim(key, now.wall_ms);
              if (claimed.found) {
                ++stats_.duplicates;
                op.items.push_back({kNoClaim});
                continue;
              }
              op.items.push_back({claimed.claim});
              ++fresh;
            }
            op.events.reserve(fresh);
            op.request = std::move(b);
            enqueue(std::move(op), frame, now, out);
          },
          [&](const transport::Call& r) { call_service(caller, r, frame, now, out); },
          [&](const transport::Disconnect& r) {
            // An operator's: every bridge (this node's, and the others' through their feeds
            // of this node) closes the user's connections. Nothing is stored.
            if (decoded.as)
              return reply_error(out, caller, errc::forbidden,
                                 "disconnect is an operator's: send it without 'as' (a service needs grant level "
                                 "manage)");
            transport::ReadEvent event{transport::ReadEvent::Kind::disconnect, options_.node_name, {}, r.user, 0};
            out.publish(transport::read_topic(r.user), transport::encode_read_event(event));
            reply(out, caller, transport::DisconnectOk{});
          },
          // The rest change rooms: they go in the next batch, in arrival order.
          [&]<class T>(T&& r) requires is_room_change<std::decay_t<T>> { queue_op(std::forward<T>(r)); },
      },
      std::move(*decoded.body));
}

void Chat::read_history(const Caller& caller, const transport::History& r, const Room& room,
                        const std::optional<std::string>& as, Effects& out) {
  store::Read read;
  if (as) read.reader = *as;
  read.up_to = room.durable_seq;  // what is acknowledged (or, on a replica, known to be the shard's)
  read.corr = next_corr_++;
  read.reply_id = caller.request_id;
  read.room = r.room;
  read.limit = r.limit == 0 ? options_.limits.default_history_page : std::min(r.limit, options_.limits.max_history_page);
  if (r.before) { read.mode = store::Read::Mode::before; read.seq = *r.before; }
  if (r.after) { read.mode = store::Read::Mode::after; read.seq = *r.after; }
  read.thread = r.thread;
  reads_.emplace(read.corr, caller);
  out.send(options_.reader_actor.empty() ? options_.persistence_actor : options_.reader_actor, store::encode(read));
}

Result<bool> Chat::check_named(Pending& op, const transport::Publish& p, const Room& room, std::uint64_t mark,
                               const Now& now) {
  if (EntryRules::looked_up(p).first == 0) return true;  // a plain message: nothing named
  if (!op.target)  // the room was made while it waited in line: it was not looked up
    return make_error(errc::unavailable, "room '" + p.room + "' was created just now; try again");
  if (auto refused = rules_.check(p, *op.target, mark, room.members.at(p.user), now.wall_ms, &op.also)) {
    // A refusal rests on this node's store: in a shard that fails over it is answered
    // once this node's log is known to be the shard's (as a write that changes nothing
    // is: Chat::log_batch), so that a primary restarted or deposed unawares answers
    // `unavailable` rather than refusing from a stale view (the simulator, seed 1322).
    op.reply = transport::ErrorReply{refused->code, std::move(refused->message)};
    return false;
  }
  return true;
}

void Chat::on_drained(const Now& now, Effects& out) {
  send_lookups(out);
  can_flush(now, out);
  if (auto* m = options_.metrics) {  // once per read round, not per message
    m->publish_durable.flush();
    m->publish_ack.flush();
    m->queued.Set(static_cast<double>(pipeline_.queued()));
    m->in_flight.Set(static_cast<double>(pipeline_.in_flight()));
    m->rooms.Set(static_cast<double>(book_.size()));
  }
}

void Chat::on_stop(const Now& now, Effects& out) {
  stopping_ = true;  // queued requests still go out in the last batches
  send_lookups(out);
  while (!calls_.empty()) fail_call(calls_.begin()->first, "node is shutting down", out);
  // The other nodes stop forwarding here at once: requests this node will not read
  // are answered `unavailable` there now, not after their timeout.
  if (options_.cluster)
    for (const auto& node : options_.cluster->others) out.send(peer_actor(node), router::encode_peer(router::PeerKind::bye, 0));
  can_flush(now, out);
  release_replicated(now, out);
}

void Chat::can_flush(const Now& now, Effects& out) {
  while (pipeline_.may_form()) flush(now, out);
}

void Chat::flush(const Now& now, Effects& out) {
  store::Append append;
  append.records.reserve(std::min(pipeline_.queued() + 8, options_.max_batch_records + 1));
  auto weigh = [](const Pending& op) { return Pipeline::Weight{record_count(op.request), record_bytes(op.request)}; };
  auto admit = [&](Pending& op, Batch& batch) -> std::optional<std::size_t> {
    if (batch.undo.capacity() == 0) batch.undo.reserve(std::min(pipeline_.queued() + 1, options_.max_batch_records));
    const std::size_t before = append.records.size();
    std::optional<Error> refusal;
    if (const std::string* room = room_of(op.request); room && !primary_here(*room))
      refusal = Error{errc::unavailable, "node '" + options_.cluster->self + "' is no longer the primary of shard '" +
                                             *shard_of(*room) + "'; try again"};
    else
      refusal = apply(op, append.records, batch.undo, batch.id, now);
    if (refusal) {
      fail_op(out, op, refusal->code, refusal->message);
      return std::nullopt;
    }
    return append.records.size() - before;
  };
  Batch batch = pipeline_.form(now.steady, weigh, admit);
  if (batch.ops.empty()) return;
  log_batch(append.records, batch);
  if (append.records.empty() && batch.log.empty() && pipeline_.nothing_ahead()) {  // only no-ops (join of a member, ...)
    finish_batch(batch, now, out);
    return;
  }
  // A batch of no-ops behind a batch in flight still goes to persistence, so that its
  // replies keep their place in line.
  append.batch = batch.id;
  append.after = batch.after;
  pipeline_.send(std::move(batch));
  ++stats_.batches;
  out.send(options_.persistence_actor, store::hand_over(std::move(append)));
}

std::optional<Error> Chat::apply(Pending& op, std::vector<persistence::Record>& records, std::vector<Undo>& undo,
                                 std::uint64_t batch, const Now& now) {
  // A message gets the room's next seq and is encoded once: the message map is what the
  // store keeps, and its frame for PUB is the same map with v and op in front. Its body
  // and cmid go to the stored record: nothing reads them from the request again.
  // Its mentions stay in the request too: they are counted once it is durable.
  auto message = [&](Room& room, const std::string& name, const std::string& user, std::string& body,
                     std::string& client_msg_id, const std::vector<std::string>& mentions, std::uint64_t ts_ms,
                     EntryFields* entry = nullptr) {
    const std::uint64_t seq = ++room.last_seq;
    std::string map = encode_message_map(name, seq, user, ts_ms, body, client_msg_id, mentions, entry);
    std::string event = transport::message_event(map);
    persistence::StoredMessage stored{name, seq, user, ts_ms, std::move(body), std::move(client_msg_id), mentions,
                                      std::move(map)};
    if (entry != nullptr) stored.entry = std::move(*entry);
    records.emplace_back(std::move(stored));
    return std::pair{seq, std::move(event)};
  };
  if (auto* p = std::get_if<transport::Publish>(&op.request)) {
    const std::uint64_t mark = release_mark(op);  // whatever the outcome: it is checked now
    auto room = book_.may_post(p->room, p->user, op.as, batch, undo);
    if (!room) return room.error();
    auto named = check_named(op, *p, **room, mark, now);
    if (!named) return named.error();
    if (!*named) return std::nullopt;  // refused by the rules: answered with the batch
    // An edit, delete or react is stored as a message is, with its kind: the store
    // changes its target in the same transaction (persistence::StoredMessage); a message
    // in a thread, its root.
    const bool lifecycle = p->kind != EntryKind::message;
    if (!lifecycle)
      if (auto bad = RoomBook::check_mentions(**room, p->room, p->mentions, "field 'mentions'")) return *bad;
    EntryFields entry;
    entry.kind = p->kind;
    entry.target = p->target;
    entry.key = p->key;
    entry.on = p->on;
    entry.reply_to = p->reply_to;
    entry.thread = p->thread;
    op.preview = utf8_prefix(entry_preview(entry, p->body), persistence::kPreviewBytes);
    if (lifecycle) rules_.accepted(*p, batch);
    auto [seq, event] = message(**room, p->room, p->user, p->body, p->client_msg_id, p->mentions, now.wall_ms,
                                entry.plain() ? nullptr : &entry);
    op.event = std::move(event);
    op.reply = transport::PublishOk{p->room, seq, now.wall_ms, false};
    return std::nullopt;
  }
  if (auto* b = std::get_if<transport::PublishBatch>(&op.request)) {
    auto room = book_.may_post(b->room, b->user, op.as, batch, undo);
    if (!room) return room.error();
    for (std::size_t i = 0; i < b->items.size(); ++i)  // one mention of a non-member refuses the whole batch
      if (auto bad = RoomBook::check_mentions(**room, b->room, b->items[i].mentions,
                                              "items[" + std::to_string(i) + "]: mentions"))
        return *bad;
    // Seqs in item order, as a range: the fresh items take the room's next seqs.
    transport::PublishBatchOk ok{b->room, std::vector<transport::ItemResult>(b->items.size())};
    std::size_t last_fresh = b->items.size();  // the room's newest message once stored
    for (std::size_t i = 0; i < b->items.size(); ++i)
      if (op.items[i].fresh != kNoClaim) last_fresh = i;
    for (std::size_t i = 0; i < b->items.size(); ++i) {
      // A repeat is answered with the original's seq (its cmid stays: the answer looks it up).
      if (op.items[i].fresh == kNoClaim) continue;
      if (i == last_fresh) op.preview = utf8_prefix(b->items[i].body, persistence::kPreviewBytes);
      auto [seq, event] = message(**room, b->room, b->user, b->items[i].body, b->items[i].client_msg_id,
                                  b->items[i].mentions, now.wall_ms);
      ok.results[i] = transport::ItemResult{seq, now.wall_ms, false};
      op.events.push_back(std::move(event));
    }
    op.reply = std::move(ok);
    return std::nullopt;
  }
  if (auto* b = std::get_if<transport::ImportBatch>(&op.request)) {
    // Messages as they were elsewhere: their senders, times and cmids kept, the seqs
    // the import names. No membership, mention or hook check: an operator's copy.
    auto room = book_.may_import(b->room, b->first_seq, op.as, batch, undo, records);
    if (!room) return room.error();
    op.events.reserve(b->items.size());
    for (auto& item : b->items) {
      auto [seq, event] = message(**room, b->room, item.user, item.body, item.client_msg_id, item.mentions, item.ts_ms);
      op.events.push_back(std::move(event));
    }
    op.preview = utf8_prefix(std::get<persistence::StoredMessage>(records.back()).body, persistence::kPreviewBytes);
    op.reply = transport::ImportBatchOk{b->room, b->first_seq, (*room)->last_seq};
    return std::nullopt;
  }
  const auto* trim = std::get_if<transport::TrimHistory>(&op.request);
  const Room* trimming = trim ? book_.find(trim->room) : nullptr;
  const std::uint64_t first_before = trimming ? trimming->first_seq : 0;
  const std::size_t before = records.size();
  const std::string* changed = options_.room_events ? room_of(op.request) : nullptr;
  const Room* room = changed ? book_.find(*changed) : nullptr;
  const std::uint64_t after_seq = room ? room->last_seq : 0;  // before the change (a delete erases it)
  auto reply = book_.apply(op.request, op.as, now.wall_ms, RoomBook::Changes{records, undo, op.presence});
  if (!reply) return reply.error();
  if (const auto* ok = std::get_if<transport::TrimHistoryOk>(&*reply); ok && trimming)
    op.trimmed = ok->first_seq - first_before;
  op.reply = std::move(*reply);
  if (changed && records.size() > before)
    op.room_event = log_room_events(op, *changed, std::span(records).subspan(before), after_seq, records, undo,
                                    batch, now);
  return std::nullopt;
}

std::uint64_t Chat::log_room_events(const Pending& op, const std::string& room,
                                    std::span<const persistence::Record> changes, std::uint64_t after_seq,
                                    std::vector<persistence::Record>& records, std::vector<Undo>& undo,
                                    std::uint64_t batch, const Now& now) {
  // `changes` views `records`: read before anything is added to it.
  std::vector<std::string> events = room_events(op.request, op.as, changes, now.wall_ms, after_seq);
  if (events.empty()) return 0;
  const std::string name = events_room(room);
  Room& log = book_.events_log(name, batch, now.wall_ms, records, undo);
  for (auto& json : events) {
    const std::uint64_t seq = ++log.last_seq;
    std::string map = encode_message_map(name, seq, {}, now.wall_ms, json, {}, {});
    records.emplace_back(persistence::StoredMessage{name, seq, {}, now.wall_ms, std::move(json), {}, {}, std::move(map)});
  }
  return log.last_seq;
}

void Chat::on_store_reply(std::string_view frame, const Now& now, Effects& out) {
  auto message = store::receive(frame);  // from this node's persistence or history reader (inproc)
  if (!message) {
    spdlog::error("chat: unreadable reply from persistence: {}", message.error().message);
    return;
  }
  if (auto* done = std::get_if<store::Appended>(&*message)) {
    if (done->batch & kApplyBatch) return on_applied(done->batch, done->error, now, out);
    if (done->error.code == errc::ok) {
      rules_.durable(done->batch);
      std::optional<Batch> batch = pipeline_.durable(done->batch);
      if (!batch) {  // a batch rolled back already, with the failed one it was sent after
        spdlog::critical("chat: persistence stored batch {}, which is not in flight", done->batch);
        return;
      }
      if (auto* m = options_.metrics)
        m->group_commit.Observe(std::chrono::duration<double>(now.steady - batch->sent).count());
      on_durable(std::move(*batch), now, out);
    } else {
      const Batch* oldest = pipeline_.oldest_in_flight();
      if (!oldest || oldest->id != done->batch) return;  // rolled back already, with the one it was sent after
      roll_back_in_flight(done->error, out);
    }
    expire_dedup(now);
    can_flush(now, out);
    return;
  }
  if (auto* page = std::get_if<store::Page>(&*message)) {
    auto it = reads_.find(page->corr);
    if (it == reads_.end()) return;
    if (auto* m = options_.metrics)  // persistence made the reply (and counts its errors)
      m->messages.sent(transport::ReplyBody(std::in_place_type<transport::HistoryOk>).index());
    send_frame(out, it->second, std::move(page->reply_frame));
    reads_.erase(it);
    return;
  }
  if (auto* page = std::get_if<store::LogPage>(&*message)) return on_log_page(*page, out);
  if (auto* looked = std::get_if<store::Looked>(&*message)) return on_looked(*looked, out);
  if (auto* scanned = std::get_if<store::AgeScanned>(&*message)) return on_age_scanned(*scanned, now, out);
  if (auto* done = std::get_if<store::Truncated>(&*message)) return on_truncated(*done, out);
  if (auto* done = std::get_if<store::CopyDone>(&*message)) return on_copy_done(*done, now, out);
  spdlog::error("chat: unexpected message from persistence");
}

void Chat::roll_back_in_flight(const Error& error, Effects& out) {
  ++stats_.batch_failures;
  std::deque<Batch> failed = pipeline_.fail_in_flight();
  spdlog::error("chat: batch {} not stored ({}): {}; rolling back {} batch(es) in flight", failed.front().id,
                errc_name(error.code), error.message, failed.size());
  const errc code = error.code == errc::storage_full ? errc::storage_full : errc::unavailable;
  const std::string message = "not stored: " + error.message;
  for (auto batch = failed.rbegin(); batch != failed.rend(); ++batch) {
    book_.undo(batch->undo);
    rules_.rolled_back(batch->id);
  }
  for (auto& [shard, log] : primary_logs_) {
    log.last_lsn = log.durable_lsn;  // their entries were not stored
    drop_terms_after(seats_.at(shard), log.last_lsn);
  }
  // Nor those of shards this node stopped being the primary of meanwhile: its log there
  // ends where it is durable (else it would wait for them, and take nothing back, forever).
  for (const auto& batch : failed)
    for (const auto& entry : batch.entries)
      if (auto r = replica_logs_.find(entry.shard); r != replica_logs_.end()) {
        r->second.received = std::min(r->second.received, r->second.durable);
        drop_terms_after(seats_.at(entry.shard), r->second.durable);
      }
  for (auto& batch : failed)
    for (auto& op : batch.ops) fail_op(out, op, code, message);
}

void Chat::finish_batch(Batch& batch, const Now& now, Effects& out) {
  auto* m = options_.metrics;
  webhook::Committed committed;  // each room's newest seq, for the webhook sender
  auto note_committed = [&](const std::string& room, std::uint64_t seq) {
    if (options_.webhook_actor.empty() || seq == 0) return;
    if (!committed.rooms.empty() && committed.rooms.back().room == room)
      committed.rooms.back().seq = std::max(committed.rooms.back().seq, seq);
    else
      committed.rooms.push_back({room, seq});
  };
  // Durable: publish each message, then acknowledge its sender(s), in seq order.
  for (auto& op : batch.ops) {
    if (op.answered) continue;
    if (auto* refused = std::get_if<transport::ErrorReply>(&op.reply)) {  // an edit, delete or react the rules refused
      fail_op(out, op, refused->code, refused->message);
      continue;
    }
    if (const auto* p = std::get_if<transport::Publish>(&op.request)) {
      auto& ok = std::get<transport::PublishOk>(op.reply);
      if (Room* room = book_.find(p->room))  // unless deleted since
        room->durable_seq = ok.seq;
      out.publish(transport::room_topic(p->room), std::move(op.event));
      heads_.note(p->room, ok.seq);
      note_committed(p->room, ok.seq);
      ++stats_.published;
      if (m) {
        m->messages.published(0);
        m->publish_durable.observe(now.steady - op.caller.received);
        m->publish_ack.observe(now.steady - op.caller.received);
      }
      book_.mentioned(p->room, p->user, ok.seq, p->mentions);
      if (p->kind == EntryKind::remove) book_.unmentioned(p->room, p->target);
      book_.stored(p->room, p->user, ok.seq, ok.ts_ms, op.preview);  // the room's newest; the sender has read it
      reply(out, op.caller, transport::PublishOk{ok.room, ok.seq, ok.ts_ms, false});
      stored(op.publication, p->room, ok.seq, ok.ts_ms, now, out);  // and its retries answered
      op.publication = kNoClaim;
    } else if (const auto* b = std::get_if<transport::PublishBatch>(&op.request)) {
      finish_publish_batch(op, now, out);
      if (const Room* room = book_.find(b->room)) note_committed(b->room, room->durable_seq);
    } else if (const auto* b = std::get_if<transport::ImportBatch>(&op.request)) {
      const auto& ok = std::get<transport::ImportBatchOk>(op.reply);
      if (Room* room = book_.find(b->room)) room->durable_seq = std::max(room->durable_seq, ok.last_seq);
      const std::string topic = transport::room_topic(b->room);
      for (auto& event : op.events) out.publish(topic, std::move(event));
      stats_.published += op.events.size();
      heads_.note(b->room, ok.last_seq);
      note_committed(b->room, ok.last_seq);
      for (std::size_t i = 0; i < b->items.size(); ++i) {  // as the store did: each sender read their message
        const std::uint64_t seq = ok.first_seq + i;
        book_.mentioned(b->room, b->items[i].user, seq, b->items[i].mentions);
        if (i + 1 < b->items.size()) book_.mark_read(b->room, b->items[i].user, seq);
      }
      book_.stored(b->room, b->items.back().user, ok.last_seq, b->items.back().ts_ms, op.preview);
      reply(out, op.caller, std::move(op.reply));
    } else if (const auto* t = std::get_if<transport::TrimHistory>(&op.request)) {
      book_.trimmed(t->room);
      const bool own = op.caller.peer.empty() && !op.caller.node;  // retention's, not a request's
      if (m && op.trimmed) (own ? m->trimmed_by_retention : m->trimmed_by_request).Increment(static_cast<double>(op.trimmed));
      if (own) on_own_trim(t->room, true, now.steady - op.caller.received, now, out);
      reply(out, op.caller, std::move(op.reply));
    } else if (const auto* r = std::get_if<transport::MarkRead>(&op.request)) {
      // Stored: the marker moves (never back), and the reply says where it stands now.
      // The user's other connections (any node's bridge) are told when it moved.
      const Room* room = book_.find(r->room);
      const std::uint64_t before = room ? RoomBook::marker(*room, r->user) : 0;
      const std::uint64_t at = book_.mark_read(r->room, r->user, r->seq);
      if (room && at > before && !RoomBook::reserved_marker(r->user))
        out.publish(transport::read_topic(r->user),
                    transport::encode_read_event({transport::ReadEvent::Kind::read, options_.node_name, r->room, r->user, at}));
      reply(out, op.caller, RoomBook::read_reply(r->room, room, at));
    } else {
      notify_presence(op, out);
      if (const std::string* room = op.room_event ? room_of(op.request) : nullptr) {  // its events, for webhooks
        const std::string log = events_room(*room);
        if (Room* events = book_.find(log)) events->durable_seq = std::max(events->durable_seq, op.room_event);
        note_committed(log, op.room_event);
      }
      // On the user's topic, which every bridge follows from the user's auth on (a room's
      // presence topic it follows only from a subscribe's answer on, too late for a removal
      // right after): a kick ends their following; a membership that ended has it checked.
      auto tell_user = [&](transport::ReadEvent::Kind kind, const std::string& room, const std::string& user) {
        out.publish(transport::read_topic(user),
                    transport::encode_read_event(transport::ReadEvent{kind, options_.node_name, room, user, 0}));
      };
      for (const auto& change : op.presence)
        if (!change.joined) tell_user(transport::ReadEvent::Kind::left, change.room, change.user);
      if (const auto* k = std::get_if<transport::Kick>(&op.request))
        tell_user(transport::ReadEvent::Kind::kicked, k->room, k->user);
      reply(out, op.caller, std::move(op.reply));
    }
  }
  if (!committed.rooms.empty()) {
    // Rooms repeat when a batch holds several publishers' ops for one room.
    std::sort(committed.rooms.begin(), committed.rooms.end(),
              [](const auto& a, const auto& b) { return a.room < b.room || (a.room == b.room && a.seq > b.seq); });
    committed.rooms.erase(std::unique(committed.rooms.begin(), committed.rooms.end(),
                                      [](const auto& a, const auto& b) { return a.room == b.room; }),
                          committed.rooms.end());
    out.send(options_.webhook_actor, webhook::encode(committed));
  }
}

void Chat::finish_publish_batch(Pending& op, const Now& now, Effects& out) {
  auto* m = options_.metrics;
  const auto& b = std::get<transport::PublishBatch>(op.request);
  auto& ok = std::get<transport::PublishBatchOk>(op.reply);
  if (Room* room = book_.find(b.room))  // unless deleted since
    for (const auto& r : ok.results) room->durable_seq = std::max(room->durable_seq, r.seq);
  const std::string topic = transport::room_topic(b.room);
  std::uint64_t newest = 0;
  std::size_t newest_item = 0;
  for (std::size_t i = 0; i < ok.results.size(); ++i)
    if (ok.results[i].seq > newest) newest = ok.results[i].seq, newest_item = i;
  if (newest > 0) heads_.note(b.room, newest);
  if (newest > 0 && op.items[newest_item].fresh != kNoClaim)  // the room's newest; the sender has read it
    book_.stored(b.room, b.user, newest, ok.results[newest_item].ts_ms, op.preview);
  std::size_t event = 0;
  for (std::size_t i = 0; i < op.items.size(); ++i) {
    BatchItem& item = op.items[i];
    transport::ItemResult& result = ok.results[i];
    if (item.fresh != kNoClaim) {
      book_.mentioned(b.room, b.user, result.seq, b.items[i].mentions);
      out.publish(topic, std::move(op.events[event++]));
      ++stats_.published;
      if (m) {
        m->messages.published(0);
        m->publish_durable.observe(now.steady - op.caller.received);
      }
      stored(item.fresh, b.room, result.seq, result.ts_ms, now, out);  // and its retries answered
      item.fresh = kNoClaim;
      continue;
    }
    // A repeat: the publish it repeats was before it in line, so it is stored now,
    // unless it failed meanwhile (then this item was not stored either: retry it).
    if (auto seen = remembered(b.room, b.user, b.items[i].client_msg_id); seen && !seen->on_its_way)
      result = transport::ItemResult{seen->seq, seen->ts_ms, true};
    else
      result = transport::ItemResult{0, 0, false, errc::unavailable,
                                     "the publish this item repeats was not stored; retry it with the same cmid"};
  }
  if (m) m->publish_ack.observe(now.steady - op.caller.received);
  reply(out, op.caller, std::move(op.reply));
}

void Chat::notify_presence(const Pending& op, Effects& out) {
  if (options_.presence_actor.empty()) return;
  // Sent once durable; the internal queue never blocks chat, whatever presence does.
  for (const auto& change : op.presence) out.send(options_.presence_actor, encode(change));
}

void Chat::expire_dedup(const Now& now) {
  const auto window = static_cast<std::uint64_t>(options_.limits.dedup_window.count());
  dedup_.expire(now.wall_ms > window ? now.wall_ms - window : 0, options_.limits.dedup_max_entries);
}

}  // namespace switchboard::actors
