#include "switchboard/actors/presence.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "switchboard/actors/grants.hpp"
#include "switchboard/actors/membership.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/actors/webhook/webhook_frames.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

using transport::PresenceEvent;
using Kind = transport::PresenceEvent::Kind;

namespace {

std::uint64_t ms(std::chrono::milliseconds d) { return static_cast<std::uint64_t>(d.count()); }
}  // namespace

void LastSeen::record(const std::string& user, std::uint64_t wall_ms) {
  if (capacity_ == 0) return;
  if (auto it = seen_.find(user); it != seen_.end()) {
    if (wall_ms <= it->second) return;
    by_time_.erase({it->second, it->first});
    it->second = wall_ms;
    by_time_.emplace(wall_ms, it->first);
    return;
  }
  if (seen_.size() >= capacity_) {
    auto oldest = by_time_.begin();
    if (wall_ms <= oldest->first) return;  // it would be the first forgotten
    const auto gone = seen_.find(std::string(oldest->second));
    by_time_.erase(oldest);
    seen_.erase(gone);
  }
  auto it = seen_.emplace(user, wall_ms).first;  // a node's key stays put when the table grows
  by_time_.emplace(wall_ms, it->first);
}

std::optional<std::uint64_t> LastSeen::find(const std::string& user) const {
  auto it = seen_.find(user);
  if (it == seen_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string_view, std::uint64_t>> LastSeen::entries() const {
  return {seen_.begin(), seen_.end()};
}

Presence::Presence(PresenceOptions options, const persistence::Snapshot& snapshot)
    : options_(std::move(options)), last_seen_(options_.max_last_seen) {
  sync_limits_ = options_.limits;
  sync_limits_.max_frame = sync_limits_.max_string = 16u << 20;  // snapshot parts, between nodes
  if (options_.cluster)
    for (const auto& other : options_.cluster->others) origins_[other];
  for (const auto& [name, state] : snapshot.rooms) {
    Room& room = rooms_[name];
    room.private_room = state.private_room;
    for (const auto& [member, role] : state.members) {
      room.members.insert(member);
      users_[member].rooms.insert(name);
    }
  }
}

bool Presence::online(const std::string& user) const { return shown(user).has_value(); }

std::optional<Presence::Shown> Presence::shown(const std::string& user) const {
  // The latest status set wins; between equal times, the node name decides.
  std::optional<Shown> best;
  std::uint64_t best_at = 0;
  std::string_view best_node;
  auto consider = [&](std::uint64_t at, std::string_view node, transport::Availability status, const std::string& text) {
    if (best && (at < best_at || (at == best_at && node <= best_node))) return;
    best = Shown{status, text};
    best_at = at;
    best_node = node;
  };
  if (auto u = users_.find(user); u != users_.end() && !u->second.sessions.empty())
    consider(u->second.at_ms, options_.cluster ? std::string_view(options_.cluster->self) : "", u->second.status,
             u->second.text);
  for (const auto& [node, origin] : origins_)
    if (auto r = origin.users.find(user); r != origin.users.end())
      consider(r->second.at_ms, node, r->second.status, r->second.text);
  return best;
}

void Presence::change_user(const std::string& user, const std::function<void()>& change, Effects& out, bool tell) {
  const auto before = shown(user);
  change();
  const auto after = shown(user);
  // Each event carries what was just worked out: not worked out again for every room.
  std::optional<webhook::PresenceChange::Kind> told;
  if (!before && after) {
    announce(user, Kind::online, out, &*after);
    told = webhook::PresenceChange::Kind::online;
  } else if (before && !after) {
    announce(user, Kind::offline, out, &*before);  // as they were last seen
    told = webhook::PresenceChange::Kind::offline;
  } else if (before && after && *before != *after) {
    announce(user, Kind::status, out, &*after);
    told = webhook::PresenceChange::Kind::status;
  }
  if (told && tell && !options_.webhook_actor.empty()) {
    const Shown& as = after ? *after : *before;
    const auto now_ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                       std::chrono::system_clock::now().time_since_epoch())
                                                       .count());
    out.send(options_.webhook_actor, webhook::encode(webhook::PresenceChange{
                                         *told, user, transport::availability_name(as.status), as.text, now_ms}));
  }
}

bool Presence::tells_for(const std::string& gone) const {
  if (!options_.cluster || !health_) return true;
  for (const auto& node : options_.cluster->others)
    if (node != gone && node < options_.cluster->self && health_->up(node)) return false;
  return true;
}

void Presence::on_message(const Inbound& in, const Now& now, Effects& out) {
  if (in.via == Inbound::Via::internal) {
    if (in.frames.size() == 1) on_membership(in.frames[0], out);
    return;
  }
  if (in.via == Inbound::Via::node || in.via == Inbound::Via::undeliverable) return on_node_message(in, now, out);
  // A change that did not fit another node's queue: its next beat shows the gap, and
  // it asks for a snapshot.
  if (in.via == Inbound::Via::queue_full) return;
  if (in.via != Inbound::Via::mailbox) return;
  std::uint64_t id = 0;
  transport::PresenceReplyBody reply;
  auto* m = options_.metrics;
  if (in.frames.size() != 1) {
    if (m) m->messages.received(m->unreadable());
    reply = transport::ErrorReply{errc::bad_frame,
                                  "a request is exactly one frame; got " + std::to_string(in.frames.size())};
  } else {
    auto decoded = transport::decode_presence_request(in.frames[0], options_.limits);
    id = decoded.id;
    if (m) m->messages.received(decoded.body ? decoded.body->index() : m->unreadable());
    auto grant = in.client.empty() ? options_.grants.end() : options_.grants.find(in.client);
    std::optional<Error> refused;
    if (decoded.body && grant != options_.grants.end()) refused = check_grant(grant->second, *decoded.body, decoded.as);
    if (!decoded.body) reply = transport::ErrorReply{decoded.body.error().code, decoded.body.error().message};
    else if (refused) reply = transport::ErrorReply{refused->code, std::move(refused->message)};
    else reply = handle(std::move(*decoded.body), decoded.as, now, out);
  }
  if (m) {
    m->messages.sent(reply.index());
    if (const auto* error = std::get_if<transport::ErrorReply>(&reply)) m->messages.error(error->code);
    m->sessions.Set(static_cast<double>(sessions_.size()));
  }
  out.reply(std::string(in.sender), transport::encode_presence_reply({id, std::move(reply)}));
  arm(out);
}

transport::PresenceReplyBody Presence::handle(transport::PresenceRequestBody&& request,
                                              const std::optional<std::string>& as, const Now& now, Effects& out) {
  using namespace transport;
  auto unknown = [](const std::string& session) {
    return ErrorReply{errc::unknown_session, "no session '" + session + "': open it again"};
  };
  return std::visit(
      Overloaded{
          [&](SessionOpen&& r) -> PresenceReplyBody {
            auto it = sessions_.find(r.session);
            if (it != sessions_.end() && it->second.user != r.user)
              return ErrorReply{errc::bad_field, "session '" + r.session + "' belongs to another user"};
            if (it == sessions_.end()) {
              User& user = users_[r.user];
              if (user.sessions.size() >= options_.max_sessions_per_user)
                return ErrorReply{errc::limit_reached, "'" + r.user + "' has " + std::to_string(user.sessions.size()) +
                                                           " sessions open, the most allowed (max_sessions_per_user)"};
              it = sessions_.emplace(r.session, Session{r.user, {}, now.steady, 0, std::nullopt}).first;
              if (user.sessions.empty()) {
                change_user(r.user, [&] {
                  user.sessions.insert(r.session);
                  user.at_ms = now.wall_ms;
                }, out, true);
                share_user(r.user, out);
              } else {
                user.sessions.insert(r.session);
              }
            }
            touch(r.session, it->second, now);
            return SessionOpenOk{r.session, ms(options_.heartbeat_interval), ms(options_.session_ttl)};
          },
          [&](Heartbeat&& r) -> PresenceReplyBody {
            auto it = sessions_.find(r.session);
            if (it == sessions_.end()) return unknown(r.session);
            Session& s = it->second;
            if (now.steady - s.window_start >= options_.heartbeat_interval) {
              s.window_start = now.steady;
              s.heartbeats_in_window = 0;
            }
            if (++s.heartbeats_in_window > options_.heartbeats_per_interval)
              return ErrorReply{errc::rate_limited, "more than " + std::to_string(options_.heartbeats_per_interval) +
                                                        " heartbeats in " +
                                                        std::to_string(options_.heartbeat_interval.count()) + " ms"};
            touch(r.session, s, now);
            return HeartbeatOk{};
          },
          [&](SessionClose&& r) -> PresenceReplyBody {
            auto it = sessions_.find(r.session);
            if (it == sessions_.end()) return unknown(r.session);
            touch(r.session, it->second, now);  // a close is a sign of life: last seen now
            end_session(r.session, out);
            return SessionCloseOk{};
          },
          [&](SetStatus&& r) -> PresenceReplyBody {
            auto it = sessions_.find(r.session);
            if (it == sessions_.end()) return unknown(r.session);
            User& user = users_[it->second.user];
            if (user.status != r.status || user.text != r.text) {
              change_user(it->second.user, [&] {
                user.status = r.status;
                user.text = std::move(r.text);
                user.at_ms = now.wall_ms;
              }, out, true);
              share_user(it->second.user, out);
            }
            touch(r.session, it->second, now);
            return SetStatusOk{};
          },
          [&](Typing&& r) -> PresenceReplyBody {
            auto it = sessions_.find(r.session);
            if (it == sessions_.end()) return unknown(r.session);
            Session& s = it->second;
            auto room = rooms_.find(r.room);
            // A private room is not there for a non-member: the answer is a missing room's.
            if (room == rooms_.end() || (room->second.private_room && !room->second.members.count(s.user)))
              return ErrorReply{errc::no_such_room, "no room named '" + r.room + "'"};
            if (!room->second.members.count(s.user))
              return ErrorReply{errc::not_member, "'" + s.user + "' is not a member of '" + r.room + "'"};
            if (s.last_typing && now.steady - *s.last_typing < options_.typing_min_interval)
              return ErrorReply{errc::rate_limited, "one typing notice per " +
                                                        std::to_string(options_.typing_min_interval.count()) + " ms"};
            s.last_typing = now.steady;
            room->second.typing[s.user] = now.steady + options_.typing_ttl;
            publish(room->second, r.room, s.user, Kind::typing, out, ms(options_.typing_ttl));
            if (options_.cluster) broadcast(presence_sync::TypingNote{r.room, s.user, ms(options_.typing_ttl)}, out);
            touch(r.session, s, now);
            return TypingOk{};
          },
          [&](Who&& r) -> PresenceReplyBody {
            auto room = rooms_.find(r.room);
            // A private room is not there for anyone asking as a non-member.
            if (room == rooms_.end() || (room->second.private_room && as && !room->second.members.count(*as)))
              return ErrorReply{errc::no_such_room, "no room named '" + r.room + "'"};
            WhoOk ok{r.room, room->second.version, {}, {}};
            for (const auto& member : room->second.members)
              if (auto u = shown(member)) ok.users.push_back({member, u->status, u->text});
            for (auto t = room->second.typing.begin(); t != room->second.typing.end();) {
              if (t->second <= now.steady) {
                t = room->second.typing.erase(t);  // expired by itself
              } else {
                if (online(t->first)) ok.typing.push_back(t->first);
                ++t;
              }
            }
            return ok;
          },
          [&](UserStatus&& r) -> PresenceReplyBody {
            UserStatusOk ok{r.user, false, Availability::online, {}};
            if (auto u = shown(r.user)) {
              ok.online = true;
              ok.status = u->status;
              ok.text = u->text;
            } else {
              ok.last_seen = last_seen_.find(r.user);
            }
            return ok;
          },
      },
      std::move(request));
}

void Presence::touch(const std::string& id, Session& s, const Now& now) {
  expiry_.erase({s.expires, id});
  s.expires = now.steady + options_.session_ttl;
  expiry_.emplace(s.expires, id);
  s.heard_ms = std::max(s.heard_ms, now.wall_ms);  // the wall clock may step back
}

void Presence::end_session(const std::string& id, Effects& out) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  const std::string user_name = it->second.user;
  User& user = users_[user_name];
  // Seen last when the last sign of life came from any of the user's sessions here: for
  // an expired one, its last heartbeat, not the moment its TTL ran out.
  user.heard_ms = std::max(user.heard_ms, it->second.heard_ms);
  expiry_.erase({it->second.expires, id});
  sessions_.erase(it);
  if (user.sessions.size() > 1) {
    user.sessions.erase(id);
    return;
  }
  last_seen_.record(user_name, std::exchange(user.heard_ms, 0));
  change_user(user_name, [&] {
    user.sessions.clear();
    user.status = transport::Availability::online;  // a status lasts while the user is online
    user.text.clear();
  }, out, true);
  share_user(user_name, out);
  if (user.rooms.empty()) users_.erase(user_name);
}

void Presence::on_timer(std::uint64_t id, const Now& now, Effects& out) {
  if (id == kBeatTimer) return heartbeat(now, out);
  armed_.reset();
  while (!expiry_.empty() && expiry_.begin()->first <= now.steady) {
    std::string id = expiry_.begin()->second;
    end_session(id, out);
  }
  if (auto* m = options_.metrics) m->sessions.Set(static_cast<double>(sessions_.size()));
  arm(out);
}

void Presence::arm(Effects& out) {
  if (expiry_.empty()) return;
  auto next = expiry_.begin()->first;
  if (armed_ && *armed_ <= next) return;
  armed_ = next;
  out.start_timer(kExpiryTimer, next);
}

void Presence::announce(const std::string& user, Kind kind, Effects& out, const Shown* as) {
  auto u = users_.find(user);
  if (u == users_.end()) return;
  for (const auto& room_name : u->second.rooms) publish(rooms_[room_name], room_name, user, kind, out, 0, as);
}

void Presence::publish(Room& room, const std::string& room_name, const std::string& user, Kind kind, Effects& out,
                       std::uint64_t ttl_ms, const Shown* as) {
  if (kind != Kind::typing) ++room.version;
  PresenceEvent e{room_name, room.version, kind, user, transport::Availability::online, {}, ttl_ms};
  const auto now_shown = as ? std::nullopt : shown(user);
  if (!as && now_shown) as = &*now_shown;
  if (as) {
    e.status = as->status;
    e.text = as->text;
  }
  out.publish(transport::room_topic(room_name), transport::encode_presence_event(e));
  if (auto* m = options_.metrics) m->messages.published(static_cast<std::size_t>(kind));
}

void Presence::on_membership(std::string_view frame, Effects& out) {
  auto change = decode_membership(frame);
  if (!change) {
    spdlog::error("presence: unreadable membership change: {}", change.error().message);
    return;
  }
  Room& room = rooms_[change->room];
  room.private_room = change->private_room;
  const bool changed = change->joined ? room.members.count(change->user) == 0 : room.members.count(change->user) > 0;
  if (!changed) return;
  if (change->joined) join(room, change->room, change->user, out);
  else leave(room, change->room, change->user, out);
  share_member(change->room, change->user, change->joined, room.private_room, out);
}

void Presence::join(Room& room, const std::string& room_name, const std::string& user, Effects& out) {
  if (!room.members.insert(user).second) return;
  users_[user].rooms.insert(room_name);
  publish(room, room_name, user, Kind::join, out);
}

void Presence::leave(Room& room, const std::string& room_name, const std::string& user, Effects& out) {
  if (!room.members.erase(user)) return;
  publish(room, room_name, user, Kind::leave, out);
  room.typing.erase(user);
  auto u = users_.find(user);
  if (u != users_.end()) {
    u->second.rooms.erase(room_name);
    if (u->second.rooms.empty() && u->second.sessions.empty()) users_.erase(u);
  }
}

// ---- MembershipChange ------------------------------------------------------------

std::string encode(const MembershipChange& change) {
  transport::FrameBuffer buffer(128);
  transport::Packer pk(buffer);
  pk.pack_map(5);
  transport::pack_field(pk, "op", std::string_view("membership"));
  transport::pack_field(pk, "room", change.room);
  transport::pack_field(pk, "user", change.user);
  transport::pack_field(pk, "joined", change.joined);
  transport::pack_field(pk, "private", change.private_room);
  return std::move(buffer.bytes);
}

Result<MembershipChange> decode_membership(std::string_view frame) {
  static const transport::Limits limits;
  auto handle = transport::unpack_map(frame, limits);
  if (!handle) return handle.error();
  transport::FieldReader f(handle->root());
  MembershipChange c;
  std::string op;
  if (!(f.text("op", op, 16) && f.text("room", c.room, limits.max_room) && f.text("user", c.user, limits.max_user) &&
        f.boolean("joined", c.joined) && f.boolean("private", c.private_room)))
    return f.error();
  if (op != "membership") return make_error(errc::unknown_op, "unknown internal op '" + op + "'");
  return c;
}

}  // namespace switchboard::actors
