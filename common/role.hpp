// A member's role in a room (docs/PROTOCOL.md section 3):
//   owner  - publishes and reads; adds and removes members, changes roles, deletes
//            the room. A room with members always keeps at least one owner.
//   member - publishes and reads.
//   reader - reads only.
// Shared by the protocol (transport/) and the store (persistence/), which name it the
// same way on the wire and on disk.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace switchboard {

enum class Role : std::uint8_t { owner, member, reader };

/// "owner", "member", "reader".
constexpr std::string_view role_name(Role role) noexcept {
  switch (role) {
    case Role::owner: return "owner";
    case Role::member: return "member";
    case Role::reader: return "reader";
  }
  return "member";
}

/// The role named `name`; nullopt for anything else.
constexpr std::optional<Role> role_from_name(std::string_view name) noexcept {
  for (Role r : {Role::owner, Role::member, Role::reader})
    if (role_name(r) == name) return r;
  return std::nullopt;
}

/// May publish (owners and members).
constexpr bool may_publish(Role role) noexcept { return role != Role::reader; }

}  // namespace switchboard
