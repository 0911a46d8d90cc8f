// Service grants: what a ZeroMQ client whose CURVE key the topology grants
// ([security.grants.NAME], router::Grant) may ask. Checked where a request enters the
// node (chat's and presence's client mailboxes), before anything else; room roles
// (chat_roles.cpp) apply on top, for the request's `as`. Pure functions.
#pragma once

#include <optional>
#include <string>

#include "switchboard/common/error.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/messages.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors {

/// nullopt if `grant` allows the request made `as` that user; else `forbidden`, with a
/// message naming the grant and what it lacks.
std::optional<Error> check_grant(const router::Grant& grant, const transport::RequestBody& request,
                                 const std::optional<std::string>& as);
std::optional<Error> check_grant(const router::Grant& grant, const transport::PresenceRequestBody& request,
                                 const std::optional<std::string>& as);

/// Whether `room` is one of `patterns` ("*", a name, or a prefix ending in '*').
bool room_matches(const std::vector<std::string>& patterns, const std::string& room);

}  // namespace switchboard::actors
