#include "switchboard/actors/grants.hpp"

#include <algorithm>

#include "switchboard/common/overloaded.hpp"
#include "switchboard/transport/ops.hpp"

namespace switchboard::actors {
namespace {

using Ops = router::Grant::Ops;

const char* ops_name(Ops ops) {
  return ops == Ops::read ? "read" : ops == Ops::write ? "write" : "manage";
}

bool any(const std::vector<std::string>& list) { return std::find(list.begin(), list.end(), "*") != list.end(); }

/// What a request needs: its level, its room (if it names one), its acting user (if
/// it names one), and whether it lists every room.
struct Need {
  Ops ops = Ops::read;
  const std::string* room = nullptr;
  const std::string* user = nullptr;
  bool all_rooms = false;
  bool all_users = false;  ///< it reads every user's data (a backup)
};

std::optional<Error> check(const router::Grant& grant, const Need& need, const char* op,
                           const std::optional<std::string>& as) {
  auto refuse = [&](std::string why) {
    return std::optional<Error>(Error{errc::forbidden, "service grant '" + grant.name + "' " + why});
  };
  if (need.ops > grant.ops)
    return refuse("may only " + std::string(ops_name(grant.ops)) + "; '" + op + "' needs " + ops_name(need.ops));
  if (need.all_users && !any(grant.users))
    return refuse("acts only for some users, and '" + std::string(op) + "' is about any user");
  if (!any(grant.users)) {
    auto granted = [&](const std::string& user) {
      return std::find(grant.users.begin(), grant.users.end(), user) != grant.users.end();
    };
    if (!as) return refuse("acts only for its users: set 'as' to one of them");
    if (!granted(*as)) return refuse("does not act for '" + *as + "'");
    if (need.user && !granted(*need.user)) return refuse("does not act for '" + *need.user + "'");
  }
  if (!any(grant.rooms)) {
    if (need.all_rooms) return refuse("may touch only some rooms, and '" + std::string(op) + "' is about them all");
    if (need.room && !room_matches(grant.rooms, *need.room)) return refuse("may not touch room '" + *need.room + "'");
  }
  return std::nullopt;
}

}  // namespace

bool room_matches(const std::vector<std::string>& patterns, const std::string& room) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
    if (!p.empty() && p.back() == '*') return room.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0;
    return p == room;
  });
}

std::optional<Error> check_grant(const router::Grant& grant, const transport::RequestBody& request,
                                 const std::optional<std::string>& as) {
  using namespace transport;
  const Need need = std::visit(
      Overloaded{
          [](const Hello&) { return Need{}; },
          [](const Ping&) { return Need{}; },
          [](const ListShards&) { return Need{Ops::read}; },
          [](const Backup&) { return Need{Ops::manage, nullptr, nullptr, true, true}; },
          // It stores messages of any user: a grant over them all, and the room.
          [](const ImportBatch& r) { return Need{Ops::manage, &r.room, nullptr, false, true}; },
          [](const ListRooms& r) { return Need{Ops::read, nullptr, r.user ? &*r.user : nullptr, !r.user}; },
          [](const Call& r) { return Need{Ops::write, nullptr, &r.user}; },
          // An operator's (no `as`): a grant over every user.
          [](const Disconnect&) { return Need{Ops::manage, nullptr, nullptr, false, true}; },
          [](const auto& r) {  // every op on a room: the right the op table gives it
            using T = std::decay_t<decltype(r)>;
            constexpr Access access = traits_of<T>.access;
            constexpr bool manage = access == Access::manage;
            Need n{manage ? Ops::manage : access == Access::read ? Ops::read : Ops::write, &r.room};
            if constexpr (!manage && requires { r.user; }) n.user = &r.user;  // the actor, not a member acted on
            return n;
          },
      },
      request);
  return check(grant, need, op_name(request), as);
}

std::optional<Error> check_grant(const router::Grant& grant, const transport::PresenceRequestBody& request,
                                 const std::optional<std::string>& as) {
  using namespace transport;
  const Need need = std::visit(
      Overloaded{
          [](const SessionOpen& r) { return Need{Ops::write, nullptr, &r.user}; },
          [](const Typing& r) { return Need{Ops::write, &r.room}; },
          [](const Who& r) { return Need{Ops::read, &r.room}; },
          [](const UserStatus&) { return Need{}; },
          [](const auto&) { return Need{Ops::write}; },  // heartbeat, session_close, set_status
      },
      request);
  return check(grant, need, op_name(request), as);
}

}  // namespace switchboard::actors
