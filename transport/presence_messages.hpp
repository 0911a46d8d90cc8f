// The presence protocol (version 1): requests to a node's presence endpoint, their
// replies, and the events its presence PUB publishes. docs/PROTOCOL.md section 8.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "switchboard/transport/messages.hpp"

namespace switchboard::transport {

/// What a user shows others while online.
enum class Availability : std::uint8_t { online, away, busy };
const char* availability_name(Availability a) noexcept;

// ---- requests ----
/// Opens (or re-opens) a session of `user`; `session` is chosen by the client.
struct SessionOpen { std::string session, user; };
struct Heartbeat { std::string session; };
/// Ends the session at once (a clean leave).
struct SessionClose { std::string session; };
struct SetStatus { std::string session; Availability status = Availability::online; std::string text; };
/// "I am typing in `room`"; shown to the room for the typing TTL.
struct Typing { std::string session, room; };
/// Who of the room's members is online now.
struct Who { std::string room; };
/// One user's presence.
struct UserStatus { std::string user; };

using PresenceRequestBody =
    std::variant<SessionOpen, Heartbeat, SessionClose, SetStatus, Typing, Who, UserStatus>;
struct PresenceRequest {
  std::uint64_t id = 0;
  PresenceRequestBody body;
  /// The user asking (messages.hpp Request::as): `who` of a private room answers
  /// only its members.
  std::optional<std::string> as = std::nullopt;
};

// ---- replies ----
struct SessionOpenOk { std::string session; std::uint64_t heartbeat_ms = 0, ttl_ms = 0; };
struct HeartbeatOk {};
struct SessionCloseOk {};
struct SetStatusOk {};
struct TypingOk {};
struct PresentUser {
  std::string user;
  Availability status = Availability::online;
  std::string text;
  friend bool operator==(const PresentUser&, const PresentUser&) = default;
};
struct WhoOk {
  std::string room;
  std::uint64_t version = 0;          ///< the room's presence version (see PresenceEvent)
  std::vector<PresentUser> users;     ///< online members, sorted by user
  std::vector<std::string> typing;    ///< members typing now, sorted
};
struct UserStatusOk {
  std::string user;
  bool online = false;
  Availability status = Availability::online;
  std::string text;
  /// Offline only: when the user was last heard from (wall ms since the Unix epoch), if
  /// the node knows; absent while online, or for a user not seen since the node started.
  std::optional<std::uint64_t> last_seen = std::nullopt;
  friend bool operator==(const UserStatusOk&, const UserStatusOk&) = default;
};

using PresenceReplyBody = std::variant<SessionOpenOk, HeartbeatOk, SessionCloseOk, SetStatusOk, TypingOk, WhoOk,
                                       UserStatusOk, ErrorReply>;
struct PresenceReply {
  std::uint64_t id = 0;
  PresenceReplyBody body;
};

// ---- events (presence PUB, topic = room_topic(room)) ----
struct PresenceEvent {
  enum class Kind : std::uint8_t { online, offline, join, leave, status, typing };
  std::string room;
  /// +1 for every change of who is here or their status (not for typing): a gap in
  /// versions means an event was missed, and `who` gives the current snapshot.
  std::uint64_t version = 0;
  Kind kind = Kind::online;
  std::string user;
  Availability status = Availability::online;
  std::string text;
  std::uint64_t ttl_ms = 0;  ///< typing only: how long to show it
  friend bool operator==(const PresenceEvent&, const PresenceEvent&) = default;
};
const char* event_kind_name(PresenceEvent::Kind k) noexcept;

const char* op_name(const PresenceRequestBody& body) noexcept;
const char* op_name(const PresenceReplyBody& body) noexcept;

}  // namespace switchboard::transport
