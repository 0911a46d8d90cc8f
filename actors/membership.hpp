// chat -> presence: a membership change that is now durable. Internal to a node, on
// presence's inproc-only internal mailbox (a client cannot send one).
#pragma once

#include <string>

#include "switchboard/common/error.hpp"

namespace switchboard::actors {

struct MembershipChange {
  std::string room, user;
  bool joined = true;  ///< false: left
  bool private_room = false;  ///< the room's `who` answers its members only
};

std::string encode(const MembershipChange& change);
Result<MembershipChange> decode_membership(std::string_view frame);

}  // namespace switchboard::actors
