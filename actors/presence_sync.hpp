// Presence between nodes: what one node's presence actor tells the others' so that
// `who`, `status` and the presence events of every node show users online anywhere.
//
// Each node shares two things with every other node, over its presence peer link
// (docs/TOPOLOGY.md, `presence_peer`):
//   - its own users: who has a session on it, with their status, and when a user whose
//     sessions there ended was last seen (UserChange);
//   - the members of the rooms it owns, which only it learns from its chat
//     (MemberChange).
// Both go as numbered changes (incarnation, seq). A node's incarnation is chosen at
// random when it starts; seq steps by 1 per change. A Beat every heartbeat carries the
// sender's (incarnation, seq): a receiver that has applied something else (it missed a
// change, the sender restarted, or it has never heard from it) sends Resync, and the
// sender answers with a Snapshot of everything it shares, in parts, which replaces
// what the receiver knew from it. So every node converges within a heartbeat or two of
// any loss, without queueing for nodes that are down.
//
// A node that stops says Bye: the others take its users offline at once, last seen then.
//
// Typing notices are ephemeral and go unnumbered (TypingNote): a lost one only shows
// a typing indicator a little less.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "switchboard/common/error.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors::presence_sync {

/// A user as the sending node sees them: online there (has a session), and the
/// status they set there and when (wall ms), which decides between nodes.
struct UserState {
  std::string user;
  bool online = false;
  transport::Availability status = transport::Availability::online;
  std::string text;
  std::uint64_t at_ms = 0;
  /// Offline only: when the sender last saw the user (wall ms), if it knows. Receivers
  /// keep the latest of all they hear (a node of an earlier version sends none).
  std::optional<std::uint64_t> last_seen = std::nullopt;
  friend bool operator==(const UserState&, const UserState&) = default;
};

struct Beat { std::uint64_t incarnation = 0, seq = 0; };
struct Resync {};
/// The sender is stopping: its sessions end with it, at `at_ms` (wall ms; none from
/// nodes of earlier versions), which is when their users were last seen.
struct Bye { std::optional<std::uint64_t> at_ms = std::nullopt; };
struct UserChange { std::uint64_t incarnation = 0, seq = 0; UserState state; };
struct MemberChange {
  std::uint64_t incarnation = 0, seq = 0;
  std::string room, user;
  bool joined = true;
  bool private_room = false;
};
/// One room's members in a snapshot part; a large room may span several parts.
struct RoomMembers {
  std::string room;
  std::vector<std::string> members;
  bool private_room = false;
};
/// Part `part` (from 0) of the sender's snapshot as of (incarnation, seq).
struct SnapshotPart {
  std::uint64_t incarnation = 0, seq = 0, part = 0;
  bool last = true;
  /// Online users, then offline users with the sender's last_seen of them (so a node
  /// that started, or missed changes, learns last-seen times too).
  std::vector<UserState> users;
  std::vector<RoomMembers> rooms;
};
struct TypingNote {
  std::string room, user;
  std::uint64_t ttl_ms = 0;
};

using Frame = std::variant<Beat, Resync, UserChange, MemberChange, SnapshotPart, TypingNote, Bye>;

/// Users plus member names in one snapshot part: keeps every array of a part within
/// the decoder's limits.
inline constexpr std::size_t kSnapshotPartEntries = 512;

std::string encode(const Frame& frame);
/// Errors: bad_frame, too_large, bad_field, bad_utf8, unknown_op.
Result<Frame> decode(std::string_view frame, const transport::Limits& limits);

/// Cuts a full snapshot into parts of at most kSnapshotPartEntries entries (a room
/// with no members still counts one, so that it is known to exist).
std::vector<SnapshotPart> split_snapshot(std::uint64_t incarnation, std::uint64_t seq, std::vector<UserState> users,
                                         std::vector<RoomMembers> rooms);

}  // namespace switchboard::actors::presence_sync
