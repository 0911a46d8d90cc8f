#include "switchboard/actors/chat/room_book.hpp"

#include "switchboard/common/event_rooms.hpp"
#include "switchboard/common/utf8.hpp"

#include <algorithm>

#include "switchboard/common/overloaded.hpp"

namespace switchboard::actors {
namespace {

std::size_t owners(const std::map<std::string, Role>& members) {
  return static_cast<std::size_t>(
      std::count_if(members.begin(), members.end(), [](const auto& m) { return m.second == Role::owner; }));
}

std::string named(const std::string& name) { return "'" + name + "'"; }

Error refuse(errc code, std::string message) { return Error{code, std::move(message)}; }
Error no_room(const std::string& name) { return refuse(errc::no_such_room, "no room named " + named(name)); }

}  // namespace

// ---- reading -----------------------------------------------------------------------

RoomBook::Room* RoomBook::find(std::string_view name) {
  auto it = rooms_.find(name);
  return it == rooms_.end() ? nullptr : &it->second;
}

const RoomBook::Room* RoomBook::find(std::string_view name) const {
  auto it = rooms_.find(name);
  return it == rooms_.end() ? nullptr : &it->second;
}

const RoomBook::Room* RoomBook::find_visible(std::string_view name, const std::optional<std::string>& as) const {
  const Room* room = find(name);
  return room && visible(*room, as) ? room : nullptr;
}

RoomBook::Rooms::iterator RoomBook::visible_room(std::string_view name, const std::optional<std::string>& as) {
  auto it = rooms_.find(name);
  return it != rooms_.end() && visible(it->second, as) ? it : rooms_.end();
}

bool RoomBook::visible(const Room& room, const std::optional<std::string>& as) {
  return !room.private_room || !as || room.members.count(*as) > 0;
}

bool RoomBook::listed(std::string_view name, const Room& room, const transport::ListRooms& request,
                      const std::optional<std::string>& as) {
  return !is_events_room(name) && (!request.user || room.members.count(*request.user) > 0) && visible(room, as);
}

std::size_t RoomBook::rooms_of(const std::string& user) const {
  auto it = rooms_of_.find(user);
  return it == rooms_of_.end() ? 0 : it->second;
}

std::optional<std::string> RoomBook::room_limit(const std::string& user) const {
  const std::size_t in = rooms_of(user);
  if (in < max_rooms_per_user_) return std::nullopt;
  return "'" + user + "' is a member of " + std::to_string(in) + " rooms, the most one user may be in (" +
         "max_rooms_per_user): leave one first";
}

// ---- membership --------------------------------------------------------------------

bool RoomBook::add(Room& room, const std::string& user, Role role) {
  if (!room.members.emplace(user, role).second) return false;
  ++rooms_of_[user];
  return true;
}

bool RoomBook::remove(Room& room, const std::string& user) {
  if (room.members.erase(user) == 0) return false;
  if (auto it = rooms_of_.find(user); it != rooms_of_.end() && --it->second == 0) rooms_of_.erase(it);
  return true;
}

void RoomBook::erase(Rooms::iterator room) {
  for (auto members = room->second.members; const auto& [user, role] : members) remove(room->second, user);
  rooms_.erase(room);
}

void RoomBook::erase(std::string_view name) {
  if (auto it = rooms_.find(name); it != rooms_.end()) erase(it);
}

// ---- the rules ---------------------------------------------------------------------

Result<RoomBook::Room*> RoomBook::may_post(const std::string& name, const std::string& user,
                                           const std::optional<std::string>& as, std::uint64_t batch,
                                           std::vector<Undo>& undo) {
  auto it = visible_room(name, as);
  if (it == rooms_.end()) return no_room(name);
  Room& room = it->second;
  auto member = room.members.find(user);
  if (member == room.members.end()) return refuse(errc::not_member, named(user) + " is not a member of " + named(name));
  if (!may_publish(member->second))
    return refuse(errc::forbidden, named(user) + " is a reader in " + named(name) + ": readers may not publish");
  note_seq(name, room, batch, undo);
  return &room;
}

void RoomBook::note_seq(const std::string& name, Room& room, std::uint64_t batch, std::vector<Undo>& undo) {
  if (room.undo_batch == batch) return;  // one undo entry per room and batch
  room.undo_batch = batch;
  undo.push_back({Undo::Kind::reset_seq, name, {}, room.last_seq});
}

RoomBook::Room& RoomBook::events_log(const std::string& name, std::uint64_t batch, std::uint64_t now_ms,
                                     std::vector<persistence::Record>& records, std::vector<Undo>& undo) {
  auto [it, fresh] = rooms_.try_emplace(name);
  Room& room = it->second;
  if (fresh) {
    room.created_ms = now_ms;
    room.private_room = true;
    undo.push_back({Undo::Kind::erase_room, name, {}, 0});
    records.emplace_back(persistence::CreateRoom{name, {}, now_ms, true});
  }
  note_seq(name, room, batch, undo);
  return room;
}

Result<RoomBook::Room*> RoomBook::may_import(const std::string& name, std::uint64_t first_seq,
                                             const std::optional<std::string>& as, std::uint64_t batch,
                                             std::vector<Undo>& undo, std::vector<persistence::Record>& records) {
  if (as)
    return refuse(errc::forbidden, "import_batch is for operators (a service acting for the node, without 'as'); " +
                                       named(*as) + " may not import");
  Room* room = find(name);
  if (!room) return no_room(name);
  const bool never_held = room->last_seq == 0 && room->first_seq == 1;
  if (!never_held && first_seq != room->last_seq + 1)
    return refuse(errc::bad_field, named(name) + " holds messages up to seq " + std::to_string(room->last_seq) +
                                       ": an import there must go on at seq " + std::to_string(room->last_seq + 1) +
                                       ", not at seq " + std::to_string(first_seq));
  note_seq(name, *room, batch, undo);
  if (never_held && first_seq > 1) {  // the room starts where the imported history does
    undo.push_back({Undo::Kind::reset_first_seq, name, {}, room->first_seq});
    room->first_seq = first_seq;
    room->last_seq = first_seq - 1;
    records.emplace_back(persistence::TrimRoom{name, first_seq});
  }
  return room;
}

RoomBook::Kept RoomBook::kept(const Room& room) const {
  // Its own setting, else the node's default; never past the node's cap.
  auto bound = [](std::uint64_t own, std::uint64_t fallback, std::uint64_t cap) {
    const std::uint64_t v = own != 0 ? own : fallback;
    return cap != 0 && (v == 0 || v > cap) ? cap : v;
  };
  const std::uint64_t own_age_s = room.retention.max_age_ms / 1000;
  return Kept{bound(own_age_s, caps_.default_age_s, caps_.max_age_s) * 1000,
              bound(room.retention.max_messages, caps_.default_messages, caps_.max_messages), room.retention.legal_hold};
}

Result<transport::ReplyBody> RoomBook::apply(const transport::RequestBody& request,
                                             const std::optional<std::string>& as, std::uint64_t now_ms,
                                             Changes changes) {
  // The room `name`, if it exists and `as` may see it.
  auto find = [&](const std::string& name) -> Room* {
    auto it = visible_room(name, as);
    return it == rooms_.end() ? nullptr : &it->second;
  };
  // A user acting for themselves only: `as`, when given, is the request's user.
  auto not_self = [&](const std::string& user, const char* what) -> std::optional<Error> {
    if (as && *as != user) return refuse(errc::forbidden, named(*as) + " may not " + what + " for " + named(user));
    return std::nullopt;
  };
  // Management: `as`, when given, owns the room.
  auto not_owner = [&](const std::string& name, const Room& room, const char* what) -> std::optional<Error> {
    if (!as) return std::nullopt;
    auto member = room.members.find(*as);
    if (member == room.members.end() || member->second != Role::owner)
      return refuse(errc::forbidden, "only an owner of " + named(name) + " may " + what + "; " + named(*as) +
                                         (member == room.members.end() ? " is not a member"
                                                                       : " is a " + std::string(role_name(member->second))));
    return std::nullopt;
  };
  // A room with other members keeps at least one owner.
  auto last_owner = [&](const std::string& name, const Room& room, const std::string& user) -> std::optional<Error> {
    auto member = room.members.find(user);
    if (member == room.members.end() || member->second != Role::owner || owners(room.members) > 1 ||
        room.members.size() == 1)
      return std::nullopt;
    return refuse(errc::forbidden, named(user) + " is the last owner of " + named(name) +
                                       ": make another member an owner (set_role) first, or delete the room");
  };
  auto change = [&](const std::string& name, const Room& room, const std::string& user, bool joined) {
    changes.presence.push_back(MembershipChange{name, user, joined, room.private_room});
  };
  // Makes `user` a member of `room` with `role` (a join, or an owner adding them), with
  // its record, undo entry and presence change; false: a member already.
  auto admit = [&](const std::string& name, Room& room, const std::string& user, Role role) -> Result<bool> {
    if (room.members.count(user)) return false;
    if (auto full = room_limit(user)) return make_error(errc::limit_reached, std::move(*full));
    add(room, user, role);
    const bool was_removed = room.removed.erase(user) > 0;  // an owner or the node took them back
    changes.undo.push_back({Undo::Kind::remove_member, name, user, 0, Role::member, was_removed});
    changes.records.emplace_back(persistence::AddMember{name, user, role});
    change(name, room, user, true);
    return true;
  };
  // Ends `user`'s membership (a leave, or, `remember`ed, an owner removing them); false:
  // not a member.
  auto dismiss = [&](const std::string& name, Room& room, const std::string& user, bool remember) {
    auto member = room.members.find(user);
    if (member == room.members.end()) return false;
    changes.undo.push_back({Undo::Kind::add_member, name, user, 0, member->second, false});
    remove(room, user);
    if (remember) room.removed.insert(user);
    changes.records.emplace_back(persistence::RemoveMember{name, user, remember});
    change(name, room, user, false);
    return true;
  };
  // Bans `user` (a member or not): their membership ends as an owner's removal ends it,
  // and they go from `removed` to `banned`; false: banned already.
  auto ban = [&](const std::string& name, Room& room, const std::string& user) {
    if (room.banned.count(user)) return false;
    if (auto member = room.members.find(user); member != room.members.end()) {
      changes.undo.push_back({Undo::Kind::add_member, name, user, 0, member->second, false});
      remove(room, user);
      change(name, room, user, false);
    }
    const bool was_removed = room.removed.erase(user) > 0;
    room.banned.insert(user);
    changes.undo.push_back({Undo::Kind::ban, name, user, 0, Role::member, was_removed});
    changes.records.emplace_back(persistence::RemoveMember{name, user, true, true});
    return true;
  };
  auto banned = [&](const std::string& name, const std::string& user, const char* then) {
    return refuse(errc::forbidden, named(user) + " is banned from " + named(name) + then);
  };
  using Reply = Result<transport::ReplyBody>;

  return std::visit(
      Overloaded{
          [&](const transport::CreateRoom& r) -> Reply {
            if (auto e = not_self(r.user, "create a room")) return *e;
            if (auto taken = rooms_.find(r.room); taken != rooms_.end()) {
              // A name held by a room `as` cannot see: refused without saying why, so that
              // a private room stays invisible (not `created: false`, which would show it).
              if (!visible(taken->second, as))
                return refuse(errc::name_unavailable, "the name " + named(r.room) + " cannot be used for a new room");
              return transport::ReplyBody{transport::CreateRoomOk{false}};
            }
            if (auto full = room_limit(r.user)) return refuse(errc::limit_reached, std::move(*full));
            Room& room = rooms_[r.room];
            room.creator = r.user;
            room.created_ms = now_ms;
            room.private_room = r.private_room;
            add(room, r.user, Role::owner);
            changes.undo.push_back({Undo::Kind::erase_room, r.room, {}, 0});
            changes.records.emplace_back(persistence::CreateRoom{r.room, r.user, now_ms, r.private_room});
            changes.records.emplace_back(persistence::AddMember{r.room, r.user, Role::owner});
            change(r.room, room, r.user, true);
            return transport::ReplyBody{transport::CreateRoomOk{true}};
          },
          [&](const transport::Join& r) -> Reply {
            if (auto e = not_self(r.user, "join")) return *e;
            Room* room = find(r.room);
            // An invitation does not readmit a user an owner removed: the join is then
            // the user's own, with the user's rights.
            if (room && r.invited && !as && room->removed.count(r.user) && !visible(*room, r.user)) room = nullptr;
            if (!room) return no_room(r.room);
            if (room->banned.count(r.user)) return banned(r.room, r.user, ": an owner must unban them first");
            auto joined = admit(r.room, *room, r.user, Role::member);
            if (!joined) return joined.error();
            return transport::ReplyBody{transport::JoinOk{*joined}};
          },
          [&](const transport::Leave& r) -> Reply {
            if (auto e = not_self(r.user, "leave")) return *e;
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = last_owner(r.room, *room, r.user)) return *e;
            // A private room with no member is out of every user's reach (only a service
            // could add one back), and its name stays taken: its last member deletes it.
            if (as && room->private_room && room->members.size() == 1 && room->members.count(r.user))
              return refuse(errc::forbidden, named(r.user) + " is the last member of private room " + named(r.room) +
                                                 ": no user could reach it again; delete it (delete_room) instead, "
                                                 "or add a member first");
            return transport::ReplyBody{transport::LeaveOk{dismiss(r.room, *room, r.user, false)}};
          },
          [&](const transport::AddMember& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "add members")) return *e;
            if (room->banned.count(r.user)) return banned(r.room, r.user, ": unban them first (unban)");
            auto added = admit(r.room, *room, r.user, r.role);
            if (!added) return added.error();
            return transport::ReplyBody{transport::AddMemberOk{*added}};
          },
          [&](const transport::RemoveMember& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "remove members")) return *e;
            if (auto e = last_owner(r.room, *room, r.user)) return *e;
            return transport::ReplyBody{
                transport::RemoveMemberOk{dismiss(r.room, *room, r.user, r.user != as.value_or(""))}};
          },
          [&](const transport::Kick& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "kick users")) return *e;
            if (as && *as == r.user)
              return refuse(errc::forbidden, named(r.user) + " may not kick themselves from " + named(r.room) +
                                                 "; leave it instead");
            if (auto e = last_owner(r.room, *room, r.user)) return *e;
            // As remove_member: an invitation does not bring them back until an owner adds them.
            return transport::ReplyBody{transport::KickOk{dismiss(r.room, *room, r.user, true)}};
          },
          [&](const transport::Ban& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "ban users")) return *e;
            if (as && *as == r.user)
              return refuse(errc::forbidden, named(r.user) + " may not ban themselves from " + named(r.room) +
                                                 "; leave it instead");
            if (auto e = last_owner(r.room, *room, r.user)) return *e;
            return transport::ReplyBody{transport::BanOk{ban(r.room, *room, r.user)}};
          },
          [&](const transport::Unban& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "unban users")) return *e;
            if (!room->banned.erase(r.user)) return transport::ReplyBody{transport::UnbanOk{false}};
            // Lifted, not readmitted: they stand as an owner's removal leaves a user.
            const bool was_removed = !room->removed.insert(r.user).second;
            changes.undo.push_back({Undo::Kind::unban, r.room, r.user, 0, Role::member, was_removed});
            changes.records.emplace_back(persistence::RemoveMember{r.room, r.user, true, false});
            return transport::ReplyBody{transport::UnbanOk{true}};
          },
          [&](const transport::SetRole& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "change roles")) return *e;
            auto member = room->members.find(r.user);
            if (member == room->members.end())
              return refuse(errc::not_member, named(r.user) + " is not a member of " + named(r.room));
            if (r.role != Role::owner)
              if (auto e = last_owner(r.room, *room, r.user)) return *e;
            const bool changed = member->second != r.role;
            if (changed) {
              changes.undo.push_back({Undo::Kind::set_role, r.room, r.user, 0, member->second});
              member->second = r.role;
              changes.records.emplace_back(persistence::AddMember{r.room, r.user, r.role});
            }
            return transport::ReplyBody{transport::SetRoleOk{changed}};
          },
          [&](const transport::DeleteRoom& r) -> Reply {
            auto it = visible_room(r.room, as);
            if (it == rooms_.end()) return no_room(r.room);
            if (auto e = not_owner(r.room, it->second, "delete it")) return *e;
            for (const auto& [user, role] : it->second.members) change(r.room, it->second, user, false);
            changes.undo.push_back({Undo::Kind::restore_room, r.room, {}, 0, Role::member, false, it->second});
            erase(it);
            changes.records.emplace_back(persistence::DeleteRoom{r.room});
            return transport::ReplyBody{transport::DeleteRoomOk{true}};
          },
          [&](const transport::SetReceipts& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "choose whether read markers are shown")) return *e;
            if (room->receipts == r.receipts) return transport::ReplyBody{transport::SetReceiptsOk{false}};
            changes.undo.push_back({Undo::Kind::set_receipts, r.room, {}, 0, Role::member, room->receipts});
            room->receipts = r.receipts;
            changes.records.emplace_back(persistence::SetReceipts{r.room, r.receipts});
            return transport::ReplyBody{transport::SetReceiptsOk{true}};
          },
          [&](const transport::SetRetention& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            const bool changes_any = r.max_age_s || r.max_messages || r.legal_hold;
            if (changes_any)
              if (auto e = not_owner(r.room, *room, "set its retention")) return *e;
            if (r.legal_hold && as)
              return refuse(errc::forbidden, "only an operator (a service acting for the node, without 'as') may " +
                                                 std::string(*r.legal_hold ? "put " : "lift ") + "a legal hold on " +
                                                 named(r.room));
            constexpr std::uint64_t kCentury = 100ull * 366 * 24 * 3600;
            persistence::Retention next = room->retention;
            if (r.max_age_s) {
              if (*r.max_age_s > kCentury)
                return refuse(errc::bad_field, "max_age_s " + std::to_string(*r.max_age_s) +
                                                   " is more than 100 years; 0 takes the node's default");
              if (caps_.max_age_s != 0 && *r.max_age_s > caps_.max_age_s)
                return refuse(errc::bad_field, "max_age_s " + std::to_string(*r.max_age_s) + " is over this node's cap of " +
                                                   std::to_string(caps_.max_age_s) + " ([limits] retention_max_age_s)");
              next.max_age_ms = *r.max_age_s * 1000;
            }
            if (r.max_messages) {
              if (caps_.max_messages != 0 && *r.max_messages > caps_.max_messages)
                return refuse(errc::bad_field, "max_messages " + std::to_string(*r.max_messages) +
                                                   " is over this node's cap of " + std::to_string(caps_.max_messages) +
                                                   " ([limits] retention_max_messages)");
              next.max_messages = *r.max_messages;
            }
            if (r.legal_hold) next.legal_hold = *r.legal_hold;
            if (next != room->retention) {
              changes.undo.push_back(
                  {Undo::Kind::set_retention, r.room, {}, 0, Role::member, false, std::nullopt, room->retention});
              room->retention = next;
              changes.records.emplace_back(persistence::SetRetention{r.room, next});
            }
            const Kept k = kept(*room);
            return transport::ReplyBody{transport::SetRetentionOk{r.room, next.max_age_ms / 1000, next.max_messages,
                                                                  next.legal_hold, k.max_age_ms / 1000, k.max_messages,
                                                                  room->first_seq}};
          },
          [&](const transport::TrimHistory& r) -> Reply {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "trim its history")) return *e;
            if (room->retention.legal_hold)
              return refuse(errc::forbidden, named(r.room) + " is under a legal hold: nothing of it is removed until an "
                                                 "operator lifts it");
            // Only what is acknowledged, and a bounded step at a time.
            const std::uint64_t to = std::min({r.before, room->durable_seq + 1, room->first_seq + kMaxTrim});
            if (to > room->first_seq) {
              changes.undo.push_back({Undo::Kind::reset_first_seq, r.room, {}, room->first_seq});
              room->first_seq = to;
              changes.records.emplace_back(persistence::TrimRoom{r.room, to});
            }
            return transport::ReplyBody{transport::TrimHistoryOk{r.room, room->first_seq}};
          },
          [&](const transport::MarkRead& r) -> Reply {
            if (auto e = not_self(r.user, "mark messages read")) return *e;
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            // A webhook's cursor (chat_webhooks.cpp) is no member's.
            if (!room->members.count(r.user) && !reserved_marker(r.user))
              return refuse(errc::not_member, named(r.user) + " is not a member of " + named(r.room));
            if (r.seq > room->last_seq)
              return refuse(errc::bad_field, "seq " + std::to_string(r.seq) + " is past the last message of " +
                                                 named(r.room) + " (seq " + std::to_string(room->last_seq) + ")");
            const std::uint64_t now_at = marker(*room, r.user);
            // Nothing to store when the marker is there already; the reply says where it is.
            // Otherwise the marker moves once the record is stored (mark_read()), and the
            // reply is made again then.
            if (r.seq > now_at) changes.records.emplace_back(persistence::MarkRead{r.room, r.user, r.seq});
            return transport::ReplyBody{read_reply(r.room, room, std::max(now_at, r.seq))};
          },
          [&](const transport::SetNotify& r) -> Reply {
            if (auto e = not_self(r.user, "choose the notifications")) return *e;
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (!room->members.count(r.user))
              return refuse(errc::not_member, named(r.user) + " is not a member of " + named(r.room));
            const std::string key = notify_key(r.user);
            const std::uint64_t was = marker(*room, key);
            if (notify_level(*room, r.user) != r.level) {
              // Set at once, so that what follows in the batch sees it; undone if the batch fails.
              const std::uint64_t value = (((was >> 2) + 1) << 2) | static_cast<std::uint64_t>(r.level);
              changes.undo.push_back({Undo::Kind::set_marker, r.room, key, was});
              room->read[key] = value;
              changes.records.emplace_back(persistence::MarkRead{r.room, key, value});
            }
            return transport::ReplyBody{transport::SetNotifyOk{r.room, r.level, effective_notify(*room, r.level)}};
          },
          [&](const auto&) -> Reply { return refuse(errc::internal, "not a change of rooms or members"); },
      },
      request);
}

std::optional<Error> RoomBook::check_mentions(const Room& room, const std::string& name,
                                              const std::vector<std::string>& mentions, std::string_view what) {
  for (const auto& user : mentions)
    if (!room.members.count(user))
      return refuse(errc::bad_field, std::string(what) + ": " + named(user) + " is not a member of " + named(name) +
                                         "; only members may be mentioned");
  return std::nullopt;
}

void RoomBook::undo(const std::vector<Undo>& undo) {
  for (auto u = undo.rbegin(); u != undo.rend(); ++u) {
    switch (u->kind) {
      case Undo::Kind::erase_room: erase(u->room); break;
      case Undo::Kind::add_member: {
        Room& room = rooms_[u->room];
        add(room, u->user, u->role);
        if (!u->removed) room.removed.erase(u->user);
        break;
      }
      case Undo::Kind::remove_member: {
        Room& room = rooms_[u->room];
        remove(room, u->user);
        if (u->removed) room.removed.insert(u->user);
        break;
      }
      case Undo::Kind::reset_seq: {
        Room& room = rooms_[u->room];
        room.last_seq = u->seq;
        room.undo_batch = 0;
        break;
      }
      case Undo::Kind::set_role: rooms_[u->room].members[u->user] = u->role; break;
      case Undo::Kind::ban: {
        Room& room = rooms_[u->room];
        room.banned.erase(u->user);
        if (u->removed) room.removed.insert(u->user);
        break;
      }
      case Undo::Kind::unban: {
        Room& room = rooms_[u->room];
        if (!u->removed) room.removed.erase(u->user);
        room.banned.insert(u->user);
        break;
      }
      case Undo::Kind::set_receipts: rooms_[u->room].receipts = u->removed; break;  // the setting it had
      case Undo::Kind::set_marker:  // a setting kept as a marker: the value it had (0: none)
        if (u->seq) rooms_[u->room].read[u->user] = u->seq;
        else rooms_[u->room].read.erase(u->user);
        break;
      case Undo::Kind::set_retention: rooms_[u->room].retention = u->retention; break;
      case Undo::Kind::reset_first_seq: rooms_[u->room].first_seq = u->seq; break;
      case Undo::Kind::restore_room: {
        Room& room = rooms_[u->room];
        for (auto members = room.members; const auto& [user, role] : members) remove(room, user);
        room = *u->saved;
        room.members.clear();
        for (const auto& [user, role] : u->saved->members) add(room, user, role);
        break;
      }
    }
  }
}

// ---- rooms as the store has them ---------------------------------------------------

void RoomBook::load(const std::string& name, const persistence::RoomState& state) {
  erase(name);
  Room& room = rooms_[name];
  room.creator = state.creator;
  room.created_ms = state.created_ms;
  room.private_room = state.private_room;
  for (const auto& [user, role] : state.members) add(room, user, role);
  room.removed = state.removed;
  room.banned = state.banned;
  room.last_seq = room.durable_seq = state.last_seq;
  room.read = {state.read.begin(), state.read.end()};
  room.mentioned = {state.mentions.begin(), state.mentions.end()};
  room.receipts = state.receipts;
  room.first_seq = state.first_seq;
  room.retention = state.retention;
  room.newest_seq = state.last_seq;
  room.newest_ts_ms = state.last_ts_ms;
  room.newest_user = state.last_user;
  room.preview = state.preview;
}

std::uint64_t RoomBook::marker(const Room& room, std::string_view user) {
  auto it = room.read.find(user);
  return it == room.read.end() ? 0 : it->second;
}

transport::MarkReadOk RoomBook::read_reply(const std::string& name, const Room* room, std::uint64_t at) {
  const std::uint64_t last = room ? room->durable_seq : 0;
  const std::uint64_t from = room ? std::max(at, room->first_seq - 1) : at;  // trimmed ones are not unread
  return transport::MarkReadOk{name, at, last > from ? last - from : 0};
}

std::string RoomBook::notify_key(std::string_view user) {
  std::string key("\x02notify:");
  key.append(user);
  return key;
}

transport::NotifyLevel RoomBook::notify_level(const Room& room, std::string_view user) {
  const std::uint64_t value = marker(room, notify_key(user));
  return static_cast<transport::NotifyLevel>(value & 3);
}

transport::NotifyLevel RoomBook::effective_notify(const Room& room, transport::NotifyLevel level) {
  if (level != transport::NotifyLevel::room_default) return level;
  return room.members.size() > kNotifyAllMembers ? transport::NotifyLevel::mentions : transport::NotifyLevel::all;
}

std::uint64_t RoomBook::mark_read(std::string_view name, const std::string& user, std::uint64_t seq) {
  Room* room = find(name);
  if (!room) return 0;
  auto [it, fresh] = room->read.try_emplace(user, seq);
  if (!fresh) it->second = std::max(it->second, seq);
  if (auto m = room->mentioned.find(user); m != room->mentioned.end()) {  // those it passed are read
    auto& seqs = m->second;
    seqs.erase(seqs.begin(), std::upper_bound(seqs.begin(), seqs.end(), it->second));
    if (seqs.empty()) room->mentioned.erase(m);
  }
  return it->second;
}

void RoomBook::trimmed(std::string_view name) {
  Room* room = find(name);
  if (!room) return;
  for (auto m = room->mentioned.begin(); m != room->mentioned.end();) {  // the store dropped them too
    auto& seqs = m->second;
    seqs.erase(seqs.begin(), std::lower_bound(seqs.begin(), seqs.end(), room->first_seq));
    m = seqs.empty() ? room->mentioned.erase(m) : std::next(m);
  }
  if (room->newest_seq < room->first_seq) {  // nothing of a removed message stays in the summary
    room->newest_user.clear();
    room->preview.clear();
  }
}

void RoomBook::mentioned(std::string_view name, const std::string& sender, std::uint64_t seq,
                         const std::vector<std::string>& users) {
  if (users.empty()) return;  // most messages mention no one: no room lookup for them
  Room* room = find(name);
  if (!room) return;
  for (const auto& user : users) {
    if (user == sender || marker(*room, user) >= seq) continue;
    auto& seqs = room->mentioned[user];
    if (auto at = std::lower_bound(seqs.begin(), seqs.end(), seq); at == seqs.end() || *at != seq) seqs.insert(at, seq);
  }
}

void RoomBook::unmentioned(std::string_view name, std::uint64_t seq) {
  Room* room = find(name);
  if (!room) return;
  for (auto it = room->mentioned.begin(); it != room->mentioned.end();) {
    auto& seqs = it->second;
    if (auto at = std::lower_bound(seqs.begin(), seqs.end(), seq); at != seqs.end() && *at == seq) seqs.erase(at);
    it = seqs.empty() ? room->mentioned.erase(it) : std::next(it);
  }
}

void RoomBook::stored(std::string_view name, const std::string& user, std::uint64_t seq, std::uint64_t ts_ms,
                      std::string_view body) {
  Room* room = find(name);
  if (!room) return;
  if (!user.empty()) mark_read(name, user, seq);  // an events log's entries have no sender
  if (seq <= room->newest_seq) return;
  room->newest_seq = seq;
  room->newest_ts_ms = ts_ms;
  room->newest_user = user;
  room->preview.assign(utf8_prefix(body, persistence::kPreviewBytes));
}

Result<transport::ReadMarkersOk> RoomBook::read_markers(const std::string& name,
                                                       const std::optional<std::string>& as) const {
  const Room* room = find_visible(name, as);
  if (!room) return no_room(name);
  if (as && !room->members.count(*as))
    return refuse(errc::not_member, named(*as) + " is not a member of " + named(name));
  if (as && !room->receipts)
    return refuse(errc::forbidden, "the read markers of " + named(name) +
                                       " are private: an owner may make them public (set_receipts)");
  transport::ReadMarkersOk ok{name, {}};
  ok.markers.reserve(room->members.size());
  for (const auto& [user, role] : room->members)
    ok.markers.push_back({user, std::min(marker(*room, user), room->durable_seq)});
  return ok;
}

transport::RoomSummary RoomBook::summary(const std::string& name, const Room& room, const std::string& user) {
  transport::RoomSummary s;
  s.room = name;
  s.private_room = room.private_room;
  if (auto member = room.members.find(user); member != room.members.end()) s.role = member->second;
  s.last_seq = room.durable_seq;
  // The newest message known may be past what is acknowledged (a replica's, before its
  // primary commits it): only an acknowledged one is shown.
  if (room.newest_seq == room.durable_seq) {
    s.last_ts_ms = room.newest_ts_ms;
    s.last_user = room.newest_user;
    s.preview = room.preview;
  }
  if (s.last_ts_ms == 0) s.last_ts_ms = room.created_ms;
  s.read_seq = std::min(marker(room, user), s.last_seq);
  s.unread = s.last_seq - std::min(s.last_seq, std::max(s.read_seq, room.first_seq - 1));  // trimmed: not unread
  if (auto m = room.mentioned.find(user); m != room.mentioned.end()) {
    const auto& seqs = m->second;  // those past the marker, and acknowledged
    s.mentions = static_cast<std::uint64_t>(std::upper_bound(seqs.begin(), seqs.end(), s.last_seq) -
                                            std::upper_bound(seqs.begin(), seqs.end(), s.read_seq));
  }
  return s;
}

void RoomBook::sort_summaries(std::vector<transport::RoomSummary>& summaries) {
  std::sort(summaries.begin(), summaries.end(), [](const auto& a, const auto& b) {
    return a.last_ts_ms != b.last_ts_ms ? a.last_ts_ms > b.last_ts_ms : a.room < b.room;
  });
}

void RoomBook::page_summaries(transport::RoomsOk& ok, const transport::ListRooms& request, bool summarized) {
  sort_summaries(ok.summaries);
  if (!summarized || (!request.limit && !request.after)) return;
  auto& s = ok.summaries;
  if (const auto& c = request.after) {  // strictly after the cursor in the order
    auto first = std::find_if(s.begin(), s.end(), [&](const transport::RoomSummary& x) {
      return x.last_ts_ms < c->ts_ms || (x.last_ts_ms == c->ts_ms && x.room > c->room);
    });
    s.erase(s.begin(), first);
  }
  if (request.limit && s.size() > request.limit) {
    s.resize(request.limit);
    ok.more = true;
  }
  ok.rooms.clear();
  for (const auto& x : s) ok.rooms.push_back(x.room);
  std::sort(ok.rooms.begin(), ok.rooms.end());
}

void RoomBook::follow(const persistence::Record& record) {
  std::visit(Overloaded{
                 [&](const persistence::CreateRoom& r) {
                   auto [it, fresh] = rooms_.try_emplace(r.room);
                   if (!fresh) return;
                   it->second.creator = r.creator;
                   it->second.created_ms = r.ts_ms;
                   it->second.private_room = r.private_room;
                 },
                 [&](const persistence::AddMember& r) {
                   Room* room = find(r.room);
                   if (!room) return;
                   if (!add(*room, r.user, r.role)) room->members[r.user] = r.role;
                   room->removed.erase(r.user);
                   room->banned.erase(r.user);
                 },
                 [&](const persistence::RemoveMember& r) {  // as the store keeps it: one standing a user
                   Room* room = find(r.room);
                   if (!room) return;
                   remove(*room, r.user);
                   room->removed.erase(r.user);
                   room->banned.erase(r.user);
                   if (r.ban) room->banned.insert(r.user);
                   else if (r.remember) room->removed.insert(r.user);
                 },
                 [&](const persistence::DeleteRoom& r) { erase(r.room); },
                 [&](const persistence::StoredMessage& m) {
                   if (Room* room = find(m.room)) room->last_seq = m.seq;
                   mentioned(m.room, m.user, m.seq, m.mentions);
                   if (m.entry.kind == EntryKind::remove) unmentioned(m.room, m.entry.target);
                   stored(m.room, m.user, m.seq, m.ts_ms, entry_preview(m.entry, m.body));
                 },
                 [&](const persistence::MarkRead& r) { mark_read(r.room, r.user, r.seq); },
                 [&](const persistence::SetReceipts& r) {
                   if (Room* room = find(r.room)) room->receipts = r.receipts;
                 },
                 [&](const persistence::SetRetention& r) {
                   if (Room* room = find(r.room)) room->retention = r.retention;
                 },
                 [&](const persistence::TrimRoom& r) {
                   Room* room = find(r.room);
                   if (!room || r.first_seq <= room->first_seq) return;
                   if (room->last_seq == 0 && room->first_seq == 1) room->last_seq = room->durable_seq = r.first_seq - 1;
                   room->first_seq = r.first_seq;
                   trimmed(r.room);
                 },
                 [](const auto&) {},
             },
             record);
}

}  // namespace switchboard::actors
