// The client protocol, version 1, as plain value types: one struct per message.
// docs/PROTOCOL.md is the specification; transport/codec.hpp maps these to msgpack.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "switchboard/common/error.hpp"
#include "switchboard/common/message_map.hpp"
#include "switchboard/common/role.hpp"

namespace switchboard::transport {

inline constexpr std::uint32_t kProtocolVersion = 1;

/// A room entry as delivered to subscribers and returned by history: a chat message, or
/// a lifecycle entry (edit, delete, react: `entry.kind`, docs/PROTOCOL.md 4.7.2).
struct RoomMessage {
  std::string room;
  std::uint64_t seq = 0;      ///< 1, 2, 3, ... per room, gapless
  std::string user;
  std::uint64_t ts_ms = 0;    ///< milliseconds since the Unix epoch, set by the node
  std::string body;
  std::string client_msg_id;
  /// Users the sender mentioned (members of the room when it was sent); mostly none.
  std::vector<std::string> mentions = {};
  /// What kind of entry, and a message's state: its latest edit, deletion, reactions
  /// (all default for a plain message).
  EntryFields entry = {};

  friend bool operator==(const RoomMessage&, const RoomMessage&) = default;
};

/// A room message read in place: its text fields view the bytes it was read from (a
/// HistoryPage's), and stay valid as long as those do. No string is made unless asked.
struct MessageView {
  std::string_view room;
  std::uint64_t seq = 0;
  std::string_view user;
  std::uint64_t ts_ms = 0;
  std::string_view body;
  std::string_view client_msg_id;
  std::vector<std::string_view> mentions = {};  ///< empty for most messages: no allocation
  EntryFields entry = {};  ///< as RoomMessage's (its own strings; none for a plain message)

  /// The message with fields of its own.
  RoomMessage to_message() const {
    return RoomMessage{std::string(room), seq, std::string(user), ts_ms, std::string(body), std::string(client_msg_id),
                       std::vector<std::string>(mentions.begin(), mentions.end()), entry};
  }
};

/// A history reply read in place: the reply's bytes, held once, and each message's
/// fields as views into them, in seq order. Copies share the bytes.
struct HistoryPage {
  std::vector<MessageView> messages;
  bool more = false;  ///< more messages past the page's end (the same as HistoryOk's)
  std::uint64_t first_seq = 0;  ///< as HistoryOk's: not 0 when the page is truncated
  std::shared_ptr<const std::string> bytes;  ///< what `messages` view
};

// ---- requests (client -> node) -------------------------------------------------

struct Hello {};
struct Ping {};
/// `user` becomes the room's owner. A private room is invisible to non-members:
/// not listed, no history, no presence; only its owners add members.
struct CreateRoom { std::string room, user; bool private_room = false; };
/// `invited`: the join rides on an invitation (a user token's room grant), made without
/// `as`. It is refused as a join `as` the user would be once an owner removed the user
/// from the room, until an owner adds them back (docs/SECURITY.md).
struct Join { std::string room, user; bool invited = false; };
struct Leave { std::string room, user; };
/// Where a page of room summaries starts: after the room `room` whose newest activity
/// was at `ts_ms` (summaries go newest activity first, then by name).
struct SummaryCursor {
  std::uint64_t ts_ms = 0;
  std::string room;
  friend bool operator==(const SummaryCursor&, const SummaryCursor&) = default;
};
/// All rooms, or with `user` the rooms that user is a member of. Summaries (a user's
/// rooms, asked as that user) may be paged: at most `limit` (0: all), from after `after`.
struct ListRooms {
  std::optional<std::string> user;
  std::uint32_t limit = 0;
  std::optional<SummaryCursor> after = std::nullopt;
};
struct Members { std::string room; };
struct Publish {
  std::string room;
  std::string user;
  std::string client_msg_id;  ///< idempotency key chosen by the sender
  std::string body;           ///< UTF-8, at most limits.max_body bytes
  /// Users mentioned: each a member of the room (else bad_field, nothing stored), at
  /// most limits.max_mentions; a user named twice counts once. Counted for each of them
  /// in their room summaries until their read marker passes the message.
  std::vector<std::string> mentions = {};
  /// A lifecycle entry (docs/PROTOCOL.md 4.7.2): an edit (`body` the new text), a delete
  /// or a reaction (`key`, `on`) of the message `target`; no mentions. Idempotent by
  /// cmid as any publish.
  EntryKind kind = EntryKind::message;
  std::uint64_t target = 0;
  std::string key = {};
  bool on = true;
  /// A message (docs/PROTOCOL.md 4.7.3): the seq of the message it answers, and of its
  /// thread's root (0: none).
  std::uint64_t reply_to = 0, thread = 0;
};
/// Many publishes of one user to one room in one frame: each item is a publish of its
/// own (its own seq, idempotent by (room, user, cmid), acknowledged once stored), and
/// one reply answers them all, item by item (PublishBatchOk).
struct PublishItem {
  std::string client_msg_id;
  std::string body;
  std::vector<std::string> mentions = {};  ///< as Publish::mentions
};
struct PublishBatch {
  std::string room;
  std::string user;
  std::vector<PublishItem> items;  ///< 1 to limits.max_publish_batch
};
/// Newest `limit` messages; or those before / after a seq. Never both.
struct History {
  std::string room;
  std::uint32_t limit = 0;    ///< 0 = the node's default page
  std::optional<std::uint64_t> before, after;
  std::uint64_t thread = 0;  ///< set: only the root and the messages of this thread (4.7.3)
};
struct LastSeq { std::string room; };
/// Room management, by an owner (`as`) or a service acting for the node.
struct AddMember { std::string room, user; Role role = Role::member; };
struct RemoveMember { std::string room, user; };
/// Bans `user` from the room (docs/PROTOCOL.md 4.11): ends their membership, as
/// RemoveMember does, and refuses every join of theirs (invited or not) and every
/// add_member of them until an Unban. Persisted and replicated with the room.
struct Ban { std::string room, user; };
/// Lifts a ban; the user stays a non-member (removed by an owner, as RemoveMember leaves
/// them: an invitation does not readmit them until an owner adds them or they join a
/// public room themselves).
struct Unban { std::string room, user; };
struct SetRole { std::string room, user; Role role = Role::member; };
/// Deletes the room, its members and its whole history.
struct DeleteRoom { std::string room; };
/// Moves `user`'s read marker in `room` forward to `seq` (at most the room's last seq;
/// a seq at or below the marker changes nothing). Durable (and, in a replicated shard,
/// replicated) before the reply. The user must be a member.
struct MarkRead { std::string room, user; std::uint64_t seq = 0; };
/// Whether the room's members may see each other's read markers (read_markers): an
/// owner's (or a service's) choice; off until set.
struct SetReceipts { std::string room; bool receipts = false; };
/// The read markers of a room's members, where its owner made them public (SetReceipts).
struct ReadMarkers { std::string room; };
/// A request to a service named in the topology (actors/service.hpp), through any
/// node; `body` is the service's own (UTF-8, at most limits.max_body bytes).
struct Call { std::string service, user, body; };
/// The chat shards of the topology, their primaries and replicas, and how far each
/// replica is behind (docs/REPLICATION.md). For operators: not on the WebSocket bridge.
struct ListShards {};
/// A hot backup of the node's store (docs/PROTOCOL.md 4.12), for operators: without
/// `backup`, begins one and answers with its first chunk; with it, answers with the
/// chunk at `offset` (the bytes received so far; the last chunk again after a lost
/// reply). Not on the WebSocket bridge.
struct Backup {
  std::optional<std::uint64_t> backup;
  std::uint64_t offset = 0;
};

/// A room's retention (docs/PROTOCOL.md 4.13): fields given are set, the others kept;
/// none: only reads it. max_age_s and max_messages by an owner, within the node's caps
/// (0: the node's default); legal_hold only by an operator (no `as`).
struct SetRetention {
  std::string room;
  std::optional<std::uint64_t> max_age_s = std::nullopt, max_messages = std::nullopt;
  std::optional<bool> legal_hold = std::nullopt;
};
/// One message of an import: its sender, time and cmid as they were (an export's line).
struct ImportItem {
  std::string user;
  std::uint64_t ts_ms = 0;
  std::string client_msg_id;
  std::string body;
  std::vector<std::string> mentions = {};
  friend bool operator==(const ImportItem&, const ImportItem&) = default;
};
/// Stores `items` as the room's messages first_seq, first_seq + 1, ... (docs/PROTOCOL.md
/// 4.14): first_seq must be the room's next seq, or any seq in a room that never held a
/// message. For operators (no `as`, a grant over every user): not on the bridge.
struct ImportBatch {
  std::string room;
  std::uint64_t first_seq = 0;
  std::vector<ImportItem> items;
};

/// Removes the room's messages below seq `before` (docs/PROTOCOL.md 4.13), at most
/// 1000 of them per request: the reply's first_seq says where the room starts now.
/// By an owner or an operator; refused while the room is under legal hold.
struct TrimHistory { std::string room; std::uint64_t before = 0; };

/// Which of a room's messages a member is notified of while offline (docs/WEBHOOKS.md,
/// notifications): every one, those that mention them, none, or the room's default
/// (`all` in a room of at most 10 members, `mentions` in a larger one).
enum class NotifyLevel : std::uint8_t { room_default = 0, all = 1, mentions = 2, none = 3 };
std::string_view notify_level_name(NotifyLevel level) noexcept;
std::optional<NotifyLevel> notify_level_from_name(std::string_view name) noexcept;
/// Removes `user` from the room as remove_member does, and ends their following of it
/// on every node's bridge, member or not (docs/PROTOCOL.md 4.11).
struct Kick { std::string room, user; };
/// Closes every WebSocket connection `user` has, on every node (docs/PROTOCOL.md 4.11).
/// An operator's (no `as`) or a service's with grant level manage.
struct Disconnect { std::string user; };
/// Sets a member's notification level in a room (docs/PROTOCOL.md 4.9.3).
struct SetNotify { std::string room, user; NotifyLevel level = NotifyLevel::room_default; };

using RequestBody = std::variant<Hello, Ping, CreateRoom, Join, Leave, ListRooms, Members,
                                 Publish, History, LastSeq, Call, AddMember, RemoveMember, SetRole,
                                 DeleteRoom, ListShards, PublishBatch, MarkRead, SetReceipts, ReadMarkers, Backup,
                                 SetRetention, ImportBatch, TrimHistory, Ban, Unban, SetNotify, Kick, Disconnect>;
struct Request {
  std::uint64_t id = 0;  ///< chosen by the client, echoed in the reply
  RequestBody body;
  /// The user whose rights the request is made with (docs/PROTOCOL.md section 3).
  /// Absent: the caller's own, a service's as its grant says. The WebSocket bridge
  /// always sets it to the connection's user.
  std::optional<std::string> as = std::nullopt;
};

// ---- replies (node -> client) --------------------------------------------------

struct HelloOk {
  std::uint32_t protocol = kProtocolVersion;
  std::string node;
  std::vector<std::string> pub;  ///< endpoints of the node's PUB socket
  std::uint64_t max_body = 0;
  std::vector<std::string> presence;      ///< endpoints of the presence actor (requests)
  std::vector<std::string> presence_pub;  ///< endpoints of the presence PUB (events)
  /// Most items a publish_batch may carry (0: the node takes no publish_batch).
  std::uint64_t max_batch = 0;
};
struct PingOk {};
struct CreateRoomOk { bool created = false; };
struct JoinOk { bool joined = false; };
struct LeaveOk { bool left = false; };
/// What is new in one of a user's rooms for them (a `rooms` reply for a user).
struct RoomSummary {
  std::string room;
  Role role = Role::member;    ///< the user's
  std::uint64_t last_seq = 0;  ///< the newest acknowledged message (0: none yet)
  std::uint64_t last_ts_ms = 0;
  std::string last_user = {};  ///< its sender
  std::string preview = {};    ///< the start of its body (at most 100 bytes, whole characters)
  std::uint64_t read_seq = 0;  ///< the user's read marker
  std::uint64_t unread = 0;    ///< last_seq - read_seq: exact, seqs are gapless
  std::uint64_t mentions = 0;  ///< messages past read_seq that mention the user
  bool private_room = false;   ///< only its members see it
  friend bool operator==(const RoomSummary&, const RoomSummary&) = default;
};
struct RoomsOk {
  std::vector<std::string> rooms;
  /// Nodes that did not answer (down), or answered without a shard none answered for:
  /// their rooms are not in `rooms`. Empty: complete.
  std::vector<std::string> missing = {};
  /// Asked for a user's rooms: one summary per room, newest activity first (the time of
  /// the room's newest message, else of its creation), then by name.
  std::vector<RoomSummary> summaries = {};
  /// A page of summaries (ListRooms::limit) with more after it: ask again from after
  /// its last one. `rooms` then holds the page's rooms.
  bool more = false;
  /// Shards of which no node answered (neither the owner nor a replica), or none that
  /// answered could yet say what is committed there (it restarted, or installed a copy):
  /// their rooms are not in the reply. Rooms of a shard not named here are all in it.
  /// In one node's answer to another: the shards it left out.
  std::vector<std::string> missing_shards = {};
};
/// The members, sorted, and each one's role (roles[i] is members[i]'s; empty when the
/// answering node did not say).
struct MembersOk { std::vector<std::string> members; std::vector<Role> roles = {}; };
struct PublishOk {
  std::string room;
  std::uint64_t seq = 0;
  std::uint64_t ts_ms = 0;
  bool duplicate = false;  ///< a retry: seq and ts are the original's
};
/// One item of a publish_batch, answered: stored (seq, ts, and whether it was a retry of
/// one stored before), or refused with a code of its own.
struct ItemResult {
  std::uint64_t seq = 0;   ///< 0: refused (code says why)
  std::uint64_t ts_ms = 0;
  bool duplicate = false;
  errc code = errc::ok;
  std::string message = {};
  friend bool operator==(const ItemResult&, const ItemResult&) = default;
};
/// A result per item, in the order of the request's items.
struct PublishBatchOk {
  std::string room;
  std::vector<ItemResult> results;
};
/// `first_seq` (not 0) when the page asked for messages the room no longer holds (its
/// retention trimmed them, or its history was imported from there on): the room's
/// history starts at first_seq. On the wire `truncated: true` and `first_seq`.
struct HistoryOk { std::vector<RoomMessage> messages; bool more = false; std::uint64_t first_seq = 0; };
struct LastSeqOk { std::string room; std::uint64_t seq = 0; };
/// The marker as it stands once the request is stored (never below what was asked, but
/// past it when the marker was further already), and what is left unread.
struct MarkReadOk { std::string room; std::uint64_t seq = 0; std::uint64_t unread = 0; };
struct SetReceiptsOk { bool changed = false; };  ///< false: it was so already
struct ReadMarker {
  std::string user;
  std::uint64_t seq = 0;  ///< 0: nothing read yet
  friend bool operator==(const ReadMarker&, const ReadMarker&) = default;
};
/// Every member's marker, by name.
struct ReadMarkersOk { std::string room; std::vector<ReadMarker> markers; };
struct CallOk { std::string service, body; };
struct AddMemberOk { bool added = false; };      ///< false: a member already (role unchanged)
struct RemoveMemberOk { bool removed = false; }; ///< false: not a member
struct BanOk { bool banned = false; };           ///< false: banned already
struct UnbanOk { bool unbanned = false; };       ///< false: not banned
/// The level as set, and the one that applies (the room's default resolved).
struct SetNotifyOk { std::string room; NotifyLevel level = NotifyLevel::room_default, effective = NotifyLevel::all; };
struct KickOk { bool removed = false; };  ///< false: they were not a member (their following still ends)
struct DisconnectOk {};
struct SetRoleOk { bool changed = false; };      ///< false: had that role already
struct DeleteRoomOk { bool deleted = false; };
struct ErrorReply { errc code = errc::internal; std::string message; };
struct ShardInfo {
  std::string name, primary;
  std::string ack;         ///< "replicated" or "local"
  std::uint64_t term = 0;  ///< the primary's term (0: not known)
  std::uint64_t lsn = 0;   ///< the primary's last durable log entry (0: none, or not known)
  bool primary_up = false; ///< the primary answered
  struct Replica {
    std::string node;
    std::uint64_t lsn = 0;  ///< the last entry it has, as the primary (or else itself) says
    bool up = false;
    friend bool operator==(const Replica&, const Replica&) = default;
  };
  std::vector<Replica> replicas = {};
  friend bool operator==(const ShardInfo&, const ShardInfo&) = default;
};
/// A chunk of a backup: `data` is the copy's bytes at `offset`; `done` on the last.
struct BackupOk {
  std::uint64_t backup = 0;
  std::uint64_t offset = 0;
  std::string data;
  bool done = false;
  std::uint64_t estimate = 0;  ///< the store's bytes in use when it began: at least the copy's size
};
/// A room's retention: its own setting (0: the node's default), what the node applies
/// now (0: no bound), and the first seq it holds.
struct SetRetentionOk {
  std::string room;
  std::uint64_t max_age_s = 0, max_messages = 0;
  bool legal_hold = false;
  std::uint64_t applied_max_age_s = 0, applied_max_messages = 0;
  std::uint64_t first_seq = 1;
  friend bool operator==(const SetRetentionOk&, const SetRetentionOk&) = default;
};
struct ImportBatchOk { std::string room; std::uint64_t first_seq = 0, last_seq = 0; };
struct TrimHistoryOk { std::string room; std::uint64_t first_seq = 1; };
struct ShardsOk {
  std::vector<ShardInfo> shards;
  std::vector<std::string> missing = {};  ///< nodes that did not answer
};

using ReplyBody = std::variant<HelloOk, PingOk, CreateRoomOk, JoinOk, LeaveOk, RoomsOk,
                               MembersOk, PublishOk, HistoryOk, LastSeqOk, CallOk, ErrorReply,
                               AddMemberOk, RemoveMemberOk, SetRoleOk, DeleteRoomOk, ShardsOk, PublishBatchOk,
                               MarkReadOk, SetReceiptsOk, ReadMarkersOk, BackupOk, SetRetentionOk, ImportBatchOk,
                               TrimHistoryOk, BanOk, UnbanOk, SetNotifyOk, KickOk, DisconnectOk>;
struct Reply {
  std::uint64_t id = 0;  ///< the request's id; 0 when the request could not be read
  ReplyBody body;
};

/// The wire name of a request ("publish", "history", ...).
const char* op_name(const RequestBody& body) noexcept;
/// The wire name of a reply: the request's op, or "error".
const char* op_name(const ReplyBody& body) noexcept;

/// PUB topic frame of a room: the room name followed by one NUL byte, so that
/// subscribing to "a" never matches room "ab".
std::string room_topic(const std::string& room);
/// The room a PUB topic is of (room_topic's inverse), or nullopt: a topic that does not
/// end in NUL, or that opens with one (the node's own: heads, a user's read events; no
/// room's name starts with NUL).
std::optional<std::string_view> room_of_topic(std::string_view topic) noexcept;

// ---- heads (node -> subscribers, docs/PROTOCOL.md section 5.2) ------------------

/// One room's newest published seq.
struct RoomHead {
  std::string room;
  std::uint64_t seq = 0;
  friend bool operator==(const RoomHead&, const RoomHead&) = default;
};
/// A node's heads event: the newest seq of each of its rooms that published since its
/// previous one (none: a keepalive). Numbered 1, 2, 3, ... from the node's start.
struct HeadsEvent {
  std::string node;
  std::uint64_t number = 0;
  std::vector<RoomHead> rooms;
  friend bool operator==(const HeadsEvent&, const HeadsEvent&) = default;
};
/// The PUB topic of heads events: a NUL byte first, which no room topic has.
inline const std::string& heads_topic() {
  static const std::string topic("\0heads", 6);
  return topic;
}

// ---- read markers moved (node -> a user's connections, docs/PROTOCOL.md 4.9.1) ------

/// `user`'s read marker in `room` moved to `seq` (a mark_read stored), as told by the
/// node that stored it.
struct ReadEvent {
  /// read: `user`'s marker in `room` moved to `seq`; kicked: `user` was kicked from
  /// `room`; disconnect: every connection of `user` is to close (no room, no seq);
  /// left: `user` is no longer a member of `room` (left, removed, banned, or the room
  /// was deleted): whoever follows the room as them checks whether they still may.
  enum class Kind : std::uint8_t { read, kicked, disconnect, left } kind = Kind::read;
  std::string node, room, user;
  std::uint64_t seq = 0;
  friend bool operator==(const ReadEvent&, const ReadEvent&) = default;
};
/// The PUB topic of `user`'s read events: NUL, "read:", the name, NUL (no room topic
/// starts with NUL, and the closing NUL keeps one user's topic from prefixing another's).
std::string read_topic(std::string_view user);
/// Whether `topic` is a read_topic (of any user).
bool is_read_topic(std::string_view topic) noexcept;

}  // namespace switchboard::transport
