// Chat's room rules: who may create, join, leave, publish to and manage a room, as
// each request's turn comes in a batch (so a request sees the rooms as the requests
// before it left them). docs/PROTOCOL.md section 3 is the user's side of it.
//
// `as` is the user a request is made for (the WebSocket bridge always sets it). Without
// it, a service acts for the node: it may manage any room, but the invariants hold for
// it too (a room with members keeps an owner; a reader never publishes).
#include "switchboard/actors/chat.hpp"
#include <algorithm>

#include "switchboard/common/message_map.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {
namespace {

std::size_t owners(const std::map<std::string, Role>& members) {
  return static_cast<std::size_t>(
      std::count_if(members.begin(), members.end(), [](const auto& m) { return m.second == Role::owner; }));
}

std::string named(const std::string& name) { return "'" + name + "'"; }

}  // namespace

std::optional<Error> Chat::apply(Pending& op, std::vector<persistence::Record>& records, std::vector<Undo>& undo,
                                 std::uint64_t batch, const Now& now) {
  const std::optional<std::string>& as = op.as;
  auto refuse = [](errc code, std::string message) { return std::optional<Error>(Error{code, std::move(message)}); };
  auto no_room = [&](const std::string& name) { return refuse(errc::no_such_room, "no room named " + named(name)); };
  // The room `name`, if it exists and `as` may see it.
  auto find = [&](const std::string& name) -> Room* {
    auto it = rooms_.find(name);
    return it != rooms_.end() && visible(it->second, as) ? &it->second : nullptr;
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
  auto change = [&](const std::string& room, const std::string& user, bool joined) {
    op.presence.push_back(MembershipChange{room, user, joined, rooms_.at(room).private_room});
  };
  // Makes `user` a member of `room` with `role` (a join, or an owner adding them), with
  // its record, undo entry and presence change; false: a member already.
  auto admit = [&](const std::string& name, Room& room, const std::string& user, Role role) -> Result<bool> {
    if (room.members.count(user)) return false;
    if (auto full = room_limit(user)) return make_error(errc::limit_reached, std::move(*full));
    add_member(room, user, role);
    const bool was_removed = room.removed.erase(user) > 0;  // an owner or the node took them back
    undo.push_back({Undo::Kind::remove_member, name, user, 0, Role::member, was_removed});
    records.emplace_back(persistence::AddMember{name, user, role});
    change(name, user, true);
    return true;
  };
  // Ends `user`'s membership (a leave, or, `remember`ed, an owner removing them); false:
  // not a member.
  auto dismiss = [&](const std::string& name, Room& room, const std::string& user, bool remember) {
    auto member = room.members.find(user);
    if (member == room.members.end()) return false;
    undo.push_back({Undo::Kind::add_member, name, user, 0, member->second, false});
    remove_member(room, user);
    if (remember) room.removed.insert(user);
    records.emplace_back(persistence::RemoveMember{name, user, remember});
    change(name, user, false);
    return true;
  };

  // A publish (or a batch of them) by `user` to `name`: the room, if the user is a member
  // who may publish; its seq is noted for undo once per room and batch.
  auto may_post = [&](const std::string& name, const std::string& user, Room*& room) -> std::optional<Error> {
    room = find(name);
    if (!room) return no_room(name);
    auto member = room->members.find(user);
    if (member == room->members.end()) return refuse(errc::not_member, named(user) + " is not a member of " + named(name));
    if (!may_publish(member->second))
      return refuse(errc::forbidden, named(user) + " is a reader in " + named(name) + ": readers may not publish");
    if (room->undo_batch != batch) {  // one undo entry per room and batch
      room->undo_batch = batch;
      undo.push_back({Undo::Kind::reset_seq, name, {}, room->last_seq});
    }
    return std::nullopt;
  };

  return std::visit(
      Overloaded{
          [&](const transport::CreateRoom& r) -> std::optional<Error> {
            if (auto e = not_self(r.user, "create a room")) return e;
            if (auto taken = rooms_.find(r.room); taken != rooms_.end()) {
              // A name held by a room `as` cannot see: refused without saying why, so that
              // a private room stays invisible (not `created: false`, which would show it).
              if (!visible(taken->second, as))
                return refuse(errc::name_unavailable, "the name " + named(r.room) + " cannot be used for a new room");
              op.reply = transport::CreateRoomOk{false};
              return std::nullopt;
            }
            if (auto full = room_limit(r.user)) return refuse(errc::limit_reached, std::move(*full));
            Room& room = rooms_[r.room];
            room.creator = r.user;
            room.created_ms = now.wall_ms;
            room.private_room = r.private_room;
            add_member(room, r.user, Role::owner);
            undo.push_back({Undo::Kind::erase_room, r.room, {}, 0});
            records.emplace_back(persistence::CreateRoom{r.room, r.user, now.wall_ms, r.private_room});
            records.emplace_back(persistence::AddMember{r.room, r.user, Role::owner});
            change(r.room, r.user, true);
            op.reply = transport::CreateRoomOk{true};
            return std::nullopt;
          },
          [&](const transport::Join& r) -> std::optional<Error> {
            if (auto e = not_self(r.user, "join")) return e;
            Room* room = find(r.room);
            // An invitation does not readmit a user an owner removed: the join is then
            // the user's own, with the user's rights.
            if (room && r.invited && !as && room->removed.count(r.user) && !visible(*room, r.user)) room = nullptr;
            if (!room) return no_room(r.room);
            auto joined = admit(r.room, *room, r.user, Role::member);
            if (!joined) return joined.error();
            op.reply = transport::JoinOk{*joined};
            return std::nullopt;
          },
          [&](const transport::Leave& r) -> std::optional<Error> {
            if (auto e = not_self(r.user, "leave")) return e;
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = last_owner(r.room, *room, r.user)) return e;
            op.reply = transport::LeaveOk{dismiss(r.room, *room, r.user, false)};
            return std::nullopt;
          },
          [&](transport::Publish& p) -> std::optional<Error> {
            Room* room = nullptr;
            if (auto e = may_post(p.room, p.user, room)) return e;
            std::uint64_t seq = ++room->last_seq;
            // Encoded once: the message map is what the store keeps, and the payload
            // published is the same map with v and op in front.
            std::string map = encode_message_map(p.room, seq, p.user, now.wall_ms, p.body, p.client_msg_id);
            op.event = transport::message_event(map);
            op.reply = transport::PublishOk{p.room, seq, now.wall_ms, false};
            records.emplace_back(persistence::StoredMessage{p.room, seq, p.user, now.wall_ms, std::move(p.body),
                                                            p.client_msg_id, std::move(map)});
            return std::nullopt;
          },
          [&](transport::PublishBatch& b) -> std::optional<Error> {
            Room* room = nullptr;
            if (auto e = may_post(b.room, b.user, room)) return e;
            // Seqs in item order, as a range: the fresh items take the room's next seqs.
            transport::PublishBatchOk ok{b.room, std::vector<transport::ItemResult>(b.items.size())};
            for (std::size_t i = 0; i < b.items.size(); ++i) {
              if (op.items[i].fresh == kNoClaim) continue;  // a repeat: answered with the original's seq
              transport::PublishItem& item = b.items[i];
              const std::uint64_t seq = ++room->last_seq;
              ok.results[i] = transport::ItemResult{seq, now.wall_ms, false};
              std::string map = encode_message_map(b.room, seq, b.user, now.wall_ms, item.body, item.client_msg_id);
              op.events.push_back(transport::message_event(map));
              records.emplace_back(persistence::StoredMessage{b.room, seq, b.user, now.wall_ms, std::move(item.body),
                                                              item.client_msg_id, std::move(map)});
            }
            op.reply = std::move(ok);
            return std::nullopt;
          },
          [&](const transport::AddMember& r) -> std::optional<Error> {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "add members")) return e;
            auto added = admit(r.room, *room, r.user, r.role);
            if (!added) return added.error();
            op.reply = transport::AddMemberOk{*added};
            return std::nullopt;
          },
          [&](const transport::RemoveMember& r) -> std::optional<Error> {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "remove members")) return e;
            if (auto e = last_owner(r.room, *room, r.user)) return e;
            op.reply = transport::RemoveMemberOk{dismiss(r.room, *room, r.user, r.user != as.value_or(""))};
            return std::nullopt;
          },
          [&](const transport::SetRole& r) -> std::optional<Error> {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "change roles")) return e;
            auto member = room->members.find(r.user);
            if (member == room->members.end())
              return refuse(errc::not_member, named(r.user) + " is not a member of " + named(r.room));
            if (r.role != Role::owner)
              if (auto e = last_owner(r.room, *room, r.user)) return e;
            const bool changed = member->second != r.role;
            if (changed) {
              undo.push_back({Undo::Kind::set_role, r.room, r.user, 0, member->second});
              member->second = r.role;
              records.emplace_back(persistence::AddMember{r.room, r.user, r.role});
            }
            op.reply = transport::SetRoleOk{changed};
            return std::nullopt;
          },
          [&](const transport::DeleteRoom& r) -> std::optional<Error> {
            Room* room = find(r.room);
            if (!room) return no_room(r.room);
            if (auto e = not_owner(r.room, *room, "delete it")) return e;
            for (const auto& [user, role] : room->members) change(r.room, user, false);
            undo.push_back({Undo::Kind::restore_room, r.room, {}, 0, Role::member, false, *room});
            for (auto members = room->members; const auto& [user, role] : members) remove_member(*room, user);
            rooms_.erase(r.room);
            records.emplace_back(persistence::DeleteRoom{r.room});
            op.reply = transport::DeleteRoomOk{true};
            return std::nullopt;
          },
          [&](const auto&) { return refuse(errc::internal, "request cannot be batched"); },
      },
      op.request);
}

}  // namespace switchboard::actors
