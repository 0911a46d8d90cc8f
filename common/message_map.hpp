// The message map (docs/PROTOCOL.md section 2.3) as bytes: the six fields of a room
// entry, room, seq, user, ts, body and cmid, `mentions` when it has any, and the fields
// of a lifecycle entry (edit, delete, react) or of a message's state (edited, deleted,
// reactions) when it has them, as one msgpack map. It is what a history
// page holds per message and, in a store in clear, what the store keeps as the
// message's value (persistence), so a page is made of stored bytes as they are; the
// publish endpoint's payload is the same map with `v` and `op` in front
// (transport::message_event). Shared by transport and persistence, which know nothing
// of each other.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/common/msgpack_reader.hpp"

namespace switchboard {

/// What a room entry is (docs/PROTOCOL.md 4.7.2): a message, or a change to one (its
/// `target`), each with a seq of its own in the room's gapless log.
enum class EntryKind : std::uint8_t { message = 0, edit = 1, remove = 2, react = 3 };
/// The wire name of a kind: "message", "edit", "delete", "react".
std::string_view entry_kind_name(EntryKind kind) noexcept;
std::optional<EntryKind> entry_kind_from_name(std::string_view name) noexcept;

/// How many of a thread's repliers its root names (EntryFields::repliers).
inline constexpr std::size_t kMaxRepliers = 10;

/// One reaction key on a message and how many users reacted with it.
struct Reaction {
  std::string key;
  std::uint64_t count = 0;
  friend bool operator==(const Reaction&, const Reaction&) = default;
};

/// The fields a room entry has beyond a plain message's: what a lifecycle entry says
/// (kind, target, key, on), and a message's state as its lifecycle entries left it
/// (edited_ts, deleted, reactions; written by the store). All default: a plain message.
struct EntryFields {
  EntryKind kind = EntryKind::message;
  std::uint64_t target = 0;  ///< edit, delete, react: the seq of the message it changes
  std::string key;           ///< react: the reaction (1 to 32 bytes of UTF-8)
  bool on = true;            ///< react: added (true) or taken back
  std::uint64_t edited_ts = 0;       ///< a message: when it was last edited (0: never)
  bool deleted = false;              ///< a message (or an edit) whose body was erased by a delete
  std::vector<Reaction> reactions;   ///< a message: its reactions by key (counts > 0), sorted
  /// A history page's message: the keys the reader reacted with (not stored).
  std::vector<std::string> mine;
  std::uint64_t reply_to = 0;  ///< a message: the seq of the message it answers (0: none)
  std::uint64_t thread = 0;    ///< a message: the seq of its thread's root (0: in no thread)
  /// A thread's root (written by the store): how many messages its thread holds, the
  /// newest one's seq, the first kMaxRepliers users who replied in the order they did.
  std::uint64_t replies = 0, last_reply = 0;
  std::vector<std::string> repliers;
  bool plain() const noexcept {
    return kind == EntryKind::message && edited_ts == 0 && !deleted && reactions.empty() && mine.empty() &&
           reply_to == 0 && thread == 0 && replies == 0;
  }
  friend bool operator==(const EntryFields&, const EntryFields&) = default;
};

/// What a room's summary shows of its newest entry (its `preview`, before it is cut to
/// length): a message's or an edit's body; "deleted a message"; "reacted KEY" or "took
/// back KEY".
std::string entry_preview(const EntryFields& entry, std::string_view body);

/// The message map, packed: a fixmap of 6 (its first byte is 0x86), or of 7 with
/// `mentions` (an array of strings) when there are any; then, for an entry that is not a
/// plain message, `kind` and `target` (and `key`, `on` for a reaction), `edited_ts`,
/// `deleted`, `reactions` (a map of key to count), `mine` (an array of keys), `reply_to`,
/// `thread`, and a root's `replies`, `last_reply`, `repliers`, each only when set. At
/// most 15 fields (a lifecycle entry has no state but `deleted`; a root is in no thread):
/// always a fixmap.
std::string encode_message_map(std::string_view room, std::uint64_t seq, std::string_view user, std::uint64_t ts_ms,
                               std::string_view body, std::string_view client_msg_id,
                               std::span<const std::string> mentions = {}, const EntryFields* entry = nullptr);

/// The entry fields alone (`kind` and the rest, as in a message map) as one msgpack map
/// (a sealed store keeps them so), and back: nullopt if `bytes` is not exactly one.
std::string encode_entry_fields(const EntryFields& entry);
std::optional<EntryFields> read_entry_fields(std::string_view bytes);

/// Reads the entry fields of a message map (EntryFields) one key and value at a time,
/// checking types only (these are a node's bytes).
class EntryReader {
 public:
  explicit EntryReader(EntryFields& e) : e_(e) {}
  /// Whether `key` is one of the entry fields (anything else is a message map's own).
  static bool is_entry_key(std::string_view key) noexcept;
  /// False: not an entry field, or of the wrong type.
  bool read(std::string_view key, const MsgpackNode& v);
  /// A lifecycle entry has its kind and target (a reaction its key and on too); nothing else has them.
  bool complete() const noexcept;

 private:
  bool mark(int bit) {
    seen_ |= bit;
    return true;
  }
  EntryFields& e_;
  int seen_ = 0;
};

/// A message map's fields, pointing into the bytes they were read from.
struct MessageMapView {
  std::string_view room, user, body, client_msg_id;
  std::uint64_t seq = 0, ts_ms = 0;
  std::vector<std::string_view> mentions = {};
  EntryFields entry = {};  ///< all default for a plain message (no allocation)
};
/// Reads a message map (the six keys, maybe `mentions` and the entry's fields, any order, nothing else);
/// nullopt if `bytes` is not exactly one. Checks types only: these are bytes a node
/// wrote.
std::optional<MessageMapView> read_message_map(std::string_view bytes);

}  // namespace switchboard
