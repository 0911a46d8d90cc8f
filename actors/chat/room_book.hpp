// Chat's rooms: who is in each one and with what role, which seqs it has given out and
// which are durable, and the rules that decide who may create, join, leave, publish to
// and manage a room (docs/PROTOCOL.md section 3 is the user's side of them).
//
// A request is checked against the rooms as the requests before it in its batch left
// them, and, when it may go ahead, applied at once: it writes the records the store
// keeps, the undo entries that take it back should its batch not be stored, and the
// membership changes presence is told of once it is durable. undo() takes a batch's
// changes back exactly, newest first, so a failed batch leaves the book as it found it.
//
// `as` is the user a request is made for (the WebSocket bridge always sets it). Without
// it, a service acts for the node: it may manage any room, but the invariants hold for
// it too (a room with members keeps an owner; a reader never publishes).
//
// No sockets, no clock, no store; one thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "switchboard/actors/membership.hpp"
#include "switchboard/common/error.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors {

class RoomBook {
 public:
  struct Room {
    std::string creator;
    std::uint64_t created_ms = 0;
    /// Its members and their roles: read here, changed only through the book (which
    /// counts each user's rooms).
    std::map<std::string, Role> members;
    bool private_room = false;  ///< invisible to anyone asking `as` a non-member
    bool receipts = false;      ///< members see each other's read markers (read_markers)
    /// Users an owner removed and nobody added back: an invited join (a token's room
    /// grant) does not readmit them.
    std::set<std::string> removed;
    /// Users banned (ban) and not unbanned: not members, and none of their joins (invited
    /// or not) nor an add_member of them goes ahead. Never in `removed` at once.
    std::set<std::string> banned;
    std::uint64_t last_seq = 0;     ///< last seq given out (may not be durable yet)
    std::uint64_t durable_seq = 0;  ///< last seq persistence confirmed
    std::uint64_t undo_batch = 0;   ///< the batch whose undo log holds this room's seq
    /// Read markers, as stored: user -> the seq they have read up to. Moved only once
    /// stored (mark_read(), stored()), never back.
    std::map<std::string, std::uint64_t, std::less<>> read;
    /// Mentions not read yet, as stored: user -> the seqs past their marker of the
    /// messages that mention them, ascending. A user's entry goes as the marker passes.
    std::map<std::string, std::vector<std::uint64_t>, std::less<>> mentioned;
    /// The newest stored message: its seq, time, sender and the start of its body.
    std::uint64_t newest_seq = 0, newest_ts_ms = 0;
    std::string newest_user, preview;
    /// Its oldest message held (given out: may not be durable yet); those below were
    /// trimmed (trim_history, retention) or never were here (an import).
    std::uint64_t first_seq = 1;
    persistence::Retention retention{};  ///< its own setting (0s: the node's default)
  };
  /// How to take one change back.
  struct Undo {
    enum class Kind {
      erase_room, add_member, remove_member, reset_seq, set_role, restore_room, set_receipts, set_retention,
      reset_first_seq, ban, unban, set_marker
    } kind;
    std::string room, user;
    std::uint64_t seq = 0;
    Role role = Role::member;        ///< add_member, set_role: the role to give back
    /// add_member, remove_member, ban: the user was in Room::removed; set_receipts: the setting before
    bool removed = false;
    std::optional<Room> saved = {};  ///< restore_room: the room as it was
    persistence::Retention retention = {};  ///< set_retention: the setting before (reset_first_seq: `seq`)
  };
  /// Where an applied request leaves what it did.
  struct Changes {
    std::vector<persistence::Record>& records;  ///< for the store, in order
    std::vector<Undo>& undo;                     ///< to take it back, in order
    std::vector<MembershipChange>& presence;     ///< for presence, once durable
  };
  using Rooms = std::map<std::string, Room, std::less<>>;

  /// The node's retention bounds ([limits] retention_*), in seconds and messages; 0: none.
  struct RetentionCaps {
    std::uint64_t max_age_s = 0, max_messages = 0, default_age_s = 0, default_messages = 0;
  };
  /// What a room keeps under its own setting, the node's default and the node's caps:
  /// an age in milliseconds and a count of messages (0: no bound), and whether a legal
  /// hold suspends trimming.
  struct Kept {
    std::uint64_t max_age_ms = 0, max_messages = 0;
    bool hold = false;
  };
  /// Messages one trim_history removes at most (a bounded write transaction).
  static constexpr std::uint64_t kMaxTrim = 1000;

  explicit RoomBook(std::size_t max_rooms_per_user) : max_rooms_per_user_(max_rooms_per_user) {}
  RoomBook(std::size_t max_rooms_per_user, RetentionCaps caps) : max_rooms_per_user_(max_rooms_per_user), caps_(caps) {}

  // ---- reading ---------------------------------------------------------------------
  const Rooms& rooms() const noexcept { return rooms_; }
  std::size_t size() const noexcept { return rooms_.size(); }
  /// The room `name` (its seqs may be moved on; its members change through the book).
  Room* find(std::string_view name);
  const Room* find(std::string_view name) const;
  /// The room `name` if someone asking `as` sees it (a private room is not there for
  /// a non-member).
  const Room* find_visible(std::string_view name, const std::optional<std::string>& as) const;
  /// Whether someone asking `as` sees the room: public rooms always; private ones only
  /// their members (and services asking for themselves, with no `as`).
  static bool visible(const Room& room, const std::optional<std::string>& as);
  /// Whether a room list shows `room`, named `name` (`request.user`: only that user's
  /// rooms). Never a room's events log (common/event_rooms.hpp).
  static bool listed(std::string_view name, const Room& room, const transport::ListRooms& request,
                     const std::optional<std::string>& as);
  /// How many rooms `user` is a member of.
  std::size_t rooms_of(const std::string& user) const;
  /// Why `user` may join no more rooms (max_rooms_per_user), or nullopt if they may.
  std::optional<std::string> room_limit(const std::string& user) const;

  // ---- the rules -------------------------------------------------------------------
  /// A request that changes rooms or members (create_room, join, leave, add_member,
  /// remove_member, ban, unban, set_role, delete_room, set_receipts, mark_read) made `as`, at `now_ms`: its reply, with what
  /// it changed in `changes`; or its refusal (forbidden, no_such_room, not_member,
  /// limit_reached, name_unavailable), and nothing changed. Any other request: internal.
  Result<transport::ReplyBody> apply(const transport::RequestBody& request, const std::optional<std::string>& as,
                                     std::uint64_t now_ms, Changes changes);
  /// A publish (or a batch of them) by `user` to `room` in batch `batch`: the room, if
  /// the user is a member who may publish (else the refusal). The room's last seq is
  /// noted for undo once per room and batch; the caller gives out the seqs.
  Result<Room*> may_post(const std::string& room, const std::string& user, const std::optional<std::string>& as,
                         std::uint64_t batch, std::vector<Undo>& undo);
  /// An import_batch into `room` from `first_seq` on: the room, if the import is an
  /// operator's (no `as`) and starts at the room's next seq, or anywhere in a room that
  /// never held a message (its first seq then moves there, with a TrimRoom record in
  /// `records`). Noted for undo as may_post does.
  Result<Room*> may_import(const std::string& room, std::uint64_t first_seq, const std::optional<std::string>& as,
                           std::uint64_t batch, std::vector<Undo>& undo, std::vector<persistence::Record>& records);
  /// The events log named `name` (common/event_rooms.hpp) for events of batch `batch`,
  /// made at `now_ms` if it is not there yet (a CreateRoom record, private, no member);
  /// its last seq noted for undo as may_post does. The caller gives out the seqs.
  Room& events_log(const std::string& name, std::uint64_t batch, std::uint64_t now_ms,
                   std::vector<persistence::Record>& records, std::vector<Undo>& undo);
  /// What `room` keeps (its setting within the node's default and caps).
  Kept kept(const Room& room) const;
  /// Whether every user in `mentions` (a publish's, to `room` named `name`) is a member:
  /// else bad_field naming the first who is not (`what`: where the list was).
  static std::optional<Error> check_mentions(const Room& room, const std::string& name,
                                             const std::vector<std::string>& mentions, std::string_view what);
  /// Takes back what `undo` records, newest first.
  void undo(const std::vector<Undo>& undo);

  // ---- read state (once stored) --------------------------------------------------------
  /// `user`'s read marker in `room` (0: none yet).
  static std::uint64_t marker(const Room& room, std::string_view user);

  // ---- settings kept as markers -------------------------------------------------------
  // A marker's name that starts with a control character (no user name has one) is not
  // a user's read position but a setting kept beside them, stored, replicated, copied
  // and backed up as markers are, and never listed as a member's: a webhook's cursor
  // (actors/webhook/webhook_frames.hpp), a member's notification level (notify_key).
  static bool reserved_marker(std::string_view name) noexcept {
    return !name.empty() && static_cast<unsigned char>(name.front()) < 0x20;
  }
  /// The marker a member's notification level is kept under. Its value: the level in its
  /// two low bits, above them a count of changes (a marker never goes back, so each
  /// change is one more).
  static std::string notify_key(std::string_view user);
  /// A member's notification level as set (room_default: never set, or set back).
  static transport::NotifyLevel notify_level(const Room& room, std::string_view user);
  /// The level that applies: room_default resolved to `all` in a room of at most
  /// kNotifyAllMembers members, `mentions` in a larger one.
  static transport::NotifyLevel effective_notify(const Room& room, transport::NotifyLevel level);
  static constexpr std::size_t kNotifyAllMembers = 10;
  /// The answer to a mark_read in `room` (named `name`; nullptr: deleted since) with the
  /// marker at `at`: where it stands and what is left unread.
  static transport::MarkReadOk read_reply(const std::string& name, const Room* room, std::uint64_t at);
  /// Moves `user`'s marker in `room` forward to `seq` (a mark_read stored); returns the
  /// marker as it stands (0: no such room).
  std::uint64_t mark_read(std::string_view room, const std::string& user, std::uint64_t seq);
  /// A message stored: the room's newest (if it is past the one known) and its sender's
  /// marker moved to it.
  void stored(std::string_view room, const std::string& user, std::uint64_t seq, std::uint64_t ts_ms,
              std::string_view body);
  /// The room's first seq moved on and that is stored: its mentions below it go, and
  /// the summary shows nothing of a removed newest message.
  void trimmed(std::string_view room);
  /// A stored message `seq` by `sender` mentions `users`: counted for each of them (but
  /// the sender) until their marker passes it.
  void mentioned(std::string_view room, const std::string& sender, std::uint64_t seq,
                 const std::vector<std::string>& users);
  /// Message `seq` was deleted: it counts as a mention for no one now.
  void unmentioned(std::string_view room, std::uint64_t seq);
  /// Whether a room list carries summaries: a user's rooms, asked by that user (or by a
  /// service for the node, with no `as`). A user's read state is theirs alone.
  static bool summarized(const transport::ListRooms& request, const std::optional<std::string>& as) {
    return request.user && (!as || *as == *request.user);
  }
  /// The members' read markers of the room `name`, asked `as`: for a member where the
  /// room's owner made them public (or for a service with no `as`); else no_such_room
  /// (a private room `as` cannot see), not_member, or forbidden (not public).
  Result<transport::ReadMarkersOk> read_markers(const std::string& name, const std::optional<std::string>& as) const;
  /// What `room` (named `name`) holds new for `user`, a member.
  static transport::RoomSummary summary(const std::string& name, const Room& room, const std::string& user);
  /// Newest activity first (the newest message's time, else the room's creation), then
  /// by name.
  static void sort_summaries(std::vector<transport::RoomSummary>& summaries);
  /// Sorts `ok.summaries` and keeps the page `request` asks for (those after its cursor,
  /// at most its limit; `more` if some are left); a paged reply's `rooms` are the page's.
  /// A reply without summaries (not `summarized`) is not paged.
  static void page_summaries(transport::RoomsOk& ok, const transport::ListRooms& request, bool summarized);

  // ---- rooms as the store has them (a restart, a replica, a copy): no rules -------
  /// A room as a snapshot of the store holds it; its seqs are durable.
  void load(const std::string& name, const persistence::RoomState& state);
  /// A stored record of another node's batch (a replica follows its primary): rooms
  /// and members as it says, a message's seq given out (and what stored() notes), a
  /// marker moved. Other records change nothing.
  void follow(const persistence::Record& record);
  /// Forgets a room and its members.
  void erase(std::string_view name);

 private:
  /// Every membership change goes through these two, so the count of each user's rooms
  /// stays right. false: a member already / not a member.
  bool add(Room& room, const std::string& user, Role role);
  bool remove(Room& room, const std::string& user);
  void erase(Rooms::iterator room);
  /// Notes `room`'s last seq for undo, once per batch: the seqs given out in `batch` are
  /// taken back with it (may_post, may_import, events_log).
  static void note_seq(const std::string& name, Room& room, std::uint64_t batch, std::vector<Undo>& undo);
  /// The room `name` if someone asking `as` sees it, else rooms_.end().
  Rooms::iterator visible_room(std::string_view name, const std::optional<std::string>& as);

  Rooms rooms_;
  /// How many rooms each user is a member of; users in none are not kept.
  std::unordered_map<std::string, std::size_t> rooms_of_;
  std::size_t max_rooms_per_user_;
  RetentionCaps caps_{};
};

}  // namespace switchboard::actors
