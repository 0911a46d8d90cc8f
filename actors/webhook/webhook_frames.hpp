// What the node's webhook sender (webhook_sender.hpp) and chat say to each other, on
// the node's inproc sockets only (docs/WEBHOOKS.md):
//
// - chat -> webhooks, after each batch is durable: the newest seq of each room that
//   got messages in it (Committed). Only rooms chat writes here (their shard's primary).
// - webhooks -> chat: which rooms are behind a webhook's cursor (BacklogAsk), and
//   moving a webhook's cursor in a room (Cursor, never answered: a cursor write lost
//   only means an event delivered again, which its id lets the receiver drop).
// - chat -> webhooks: the answer to a BacklogAsk (Backlog).
// - webhooks -> chat -> webhooks: a room's members, their notification levels and read
//   markers, for a notifications webhook (AudienceAsk, Audience).
// - webhooks -> chat: reading a room's events log (Fetch), answered as a history request.
// - presence -> webhooks: a user's presence changed (PresenceChange), never answered.
//
// A webhook's cursor in a room is stored as the read marker of a name no user can
// have (cursor_key: it starts with a control character, which user names never hold),
// so that it is durable, replicated, copied and backed up with the room, as markers are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace switchboard::actors::webhook {

struct RoomSeq {
  std::string room;
  std::uint64_t seq = 0;
  friend bool operator==(const RoomSeq&, const RoomSeq&) = default;
};
struct Committed {
  std::vector<RoomSeq> rooms;
  friend bool operator==(const Committed&, const Committed&) = default;
};
/// The rooms after `after` (by name) among `rooms` (names, or prefixes ending in '*')
/// whose cursor for `webhook` is behind; or, `room` set, that room's row whatever it is.
struct BacklogAsk {
  std::string webhook, after, room;
  std::vector<std::string> rooms;
  /// What the webhook takes: rooms' messages, rooms' events logs (common/event_rooms.hpp;
  /// `rooms` then matches the room each log is of), or both.
  bool messages = true, events = false;
  friend bool operator==(const BacklogAsk&, const BacklogAsk&) = default;
};
struct BacklogRow {
  std::string room;
  std::uint64_t cursor = 0;     ///< the webhook's stored cursor (0: none)
  std::uint64_t last = 0;       ///< the room's last durable seq
  friend bool operator==(const BacklogRow&, const BacklogRow&) = default;
};
struct Backlog {
  std::string webhook;
  std::string room;              ///< the BacklogAsk's `room` (empty: a scan's page)
  std::vector<BacklogRow> rows;  ///< by room name
  bool more = false;             ///< ask again after the last row's room
  friend bool operator==(const Backlog&, const Backlog&) = default;
};
struct Cursor {
  std::string webhook, room;
  std::uint64_t seq = 0;
  friend bool operator==(const Cursor&, const Cursor&) = default;
};
/// Who of a room's members hears of its messages (notifications): webhooks -> chat.
struct AudienceAsk {
  std::string webhook, room;
  friend bool operator==(const AudienceAsk&, const AudienceAsk&) = default;
};
struct AudienceMember {
  std::string user;
  std::uint8_t level = 1;     ///< transport::NotifyLevel as it applies: all, mentions or none
  std::uint64_t read = 0;     ///< their read marker
  friend bool operator==(const AudienceMember&, const AudienceMember&) = default;
};
/// chat -> webhooks: the room's members now (`exists` false: the room is gone).
struct Audience {
  std::string webhook, room;
  bool exists = false;
  std::vector<AudienceMember> members;
  friend bool operator==(const Audience&, const Audience&) = default;
};
/// webhooks -> chat: read `limit` entries after `after` of a room's events log, which a
/// client's history request cannot name. Chat answers with a history reply of request id
/// `id`, as to a client, to the routing id kSenderRoutingId on its client mailbox.
struct Fetch {
  std::uint64_t id = 0;
  std::string room;
  std::uint64_t after = 0;
  std::uint32_t limit = 0;
  friend bool operator==(const Fetch&, const Fetch&) = default;
};
/// presence -> webhooks: a user came online, went offline or changed status, as this
/// node is the one to tell (docs/WEBHOOKS.md, presence events).
struct PresenceChange {
  enum class Kind : std::uint8_t { online, offline, status } kind = Kind::online;
  std::string user;
  std::string status;  ///< their availability's name ("online", "away", "busy"): as last shown, when offline
  std::string text;    ///< their status text
  std::uint64_t ts_ms = 0;
  friend bool operator==(const PresenceChange&, const PresenceChange&) = default;
};
using Frame = std::variant<Committed, BacklogAsk, Backlog, Cursor, AudienceAsk, Audience, Fetch, PresenceChange>;

/// The routing id of the webhook sender's socket on chat's client mailbox.
inline constexpr std::string_view kSenderRoutingId = "\x01webhooks";

/// Rows of a Backlog at most.
inline constexpr std::size_t kBacklogRows = 512;

std::string encode(const Frame& frame);
/// nullopt: not a frame of these kinds (the bytes come from this node's own actors;
/// a bad one is a bug, logged by the reader).
std::optional<Frame> decode(std::string_view bytes);

/// `text` with every byte other than A-Z a-z 0-9 - . _ ~ written %XX: how event ids and
/// notification keys write room and user names.
std::string id_escape(std::string_view text);

/// Whether a webhook of `rooms` (names, or prefixes ending in '*') that takes rooms'
/// messages (`messages`) and/or their membership and room events (`events`) takes what
/// `name` holds: a room's messages, or a room's events log (common/event_rooms.hpp),
/// which `rooms` matches by the room it is of. The one rule for chat and the sender.
bool covers(const std::vector<std::string>& rooms, bool messages, bool events, std::string_view name);

/// The read-marker name a webhook's cursor is stored under.
std::string cursor_key(std::string_view webhook);
/// Whether a read marker's name is a webhook's cursor (no user's marker is).
inline bool is_cursor_key(std::string_view user) noexcept { return !user.empty() && user.front() == '\x01'; }

}  // namespace switchboard::actors::webhook
