// HistoryStore: Switchboard's durable chat history in one LMDB environment.
//
// Rooms, their members and their messages, keyed by (room, seq). Knows nothing of
// ZeroMQ. Not thread-safe: one owner thread (the persistence actor) calls it.
//
// Writes come in groups: append_batch() applies every record of a group commit in one
// write transaction, and returns only once that transaction is committed (and, with
// Durability::sync, fsynced). Either every record of the batch is stored or none is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "switchboard/common/error.hpp"
#include "switchboard/common/message_map.hpp"
#include "switchboard/common/role.hpp"
#include "switchboard/persistence/backup_stream.hpp"
#include "switchboard/persistence/store_key.hpp"

namespace switchboard::persistence {

/// What an acknowledged write survives.
enum class Durability {
  sync,    ///< fsync per group commit: survives power loss (the default).
  nosync,  ///< no fsync (MDB_NOSYNC): survives a process crash, not a power loss.
};

struct StoreOptions {
  std::filesystem::path dir;                          ///< created if missing
  Durability durability = Durability::sync;
  std::size_t initial_map_bytes = 64ull << 20;        ///< LMDB map size at open
  std::size_t max_map_bytes = 64ull << 30;            ///< the map never grows past this
  /// Set: message bodies are sealed with it (store_key.hpp). A store is sealed or not
  /// from its first message on: open() refuses a key for a store that holds messages
  /// in clear, no key for a sealed store, and a key other than the one it was sealed
  /// with.
  std::optional<StoreKey> key;
};

/// One room entry as stored and as delivered: a chat message, or a lifecycle entry
/// (`entry.kind`: an edit, a delete or a reaction of the message `entry.target`).
/// Storing a lifecycle entry changes its target in the same transaction: an edit puts
/// its body in the target's place (and `edited_ts`); a delete erases the target's body,
/// mentions, reactions and the bodies of its edits, leaving a tombstone (`deleted`); a
/// reaction adds or takes back one (user, key) and moves the target's count of it. A
/// target that is not there (trimmed), not a message, or deleted already is left as it
/// is (an edit of a deleted message is stored with its body erased). Chat checks the
/// rules (who may, which target) before it gives the entry a seq.
struct StoredMessage {
  std::string room;
  std::uint64_t seq = 0;     ///< 1, 2, 3, ... per room, gapless
  std::string user;
  std::uint64_t ts_ms = 0;   ///< milliseconds since the Unix epoch, set by chat
  std::string body;
  std::string client_msg_id;
  /// Users it mentions (not its sender): each is counted the message in the `mentions`
  /// table until their read marker passes it.
  std::vector<std::string> mentions = {};
  /// The message map of the fields above (common/message_map.hpp) when the sender made
  /// it already: a store in clear keeps it as the message's value as it is. Empty: the
  /// store makes it. Not part of what the message is (==).
  std::string wire = {};
  /// What kind of entry it is, and (read back) the state its lifecycle entries left a
  /// message in. Of a record to store only kind, target, key and on are read: the store
  /// keeps the state.
  EntryFields entry = {};

  friend bool operator==(const StoredMessage& a, const StoredMessage& b) {
    return a.room == b.room && a.seq == b.seq && a.user == b.user && a.ts_ms == b.ts_ms && a.body == b.body &&
           a.client_msg_id == b.client_msg_id && a.mentions == b.mentions && a.entry == b.entry;
  }
};

/// Records of a group commit.
struct CreateRoom { std::string room; std::string creator; std::uint64_t ts_ms = 0; bool private_room = false; };
/// Adds a member with `role`, or sets the role of one.
struct AddMember { std::string room; std::string user; Role role = Role::member; };
/// Ends a membership, or sets how a non-member stands. Neither flag: a leave, nothing
/// kept. `remember`: an owner removed the user; the store keeps that, so that an
/// invitation (a token's room grant) does not bring them back until an AddMember does
/// (RoomState::removed). `ban` (with `remember`): the user is banned (RoomState::banned);
/// a remembered RemoveMember without `ban` of a banned user lifts the ban (an unban) and
/// leaves them removed. An AddMember ends either.
struct RemoveMember { std::string room; std::string user; bool remember = false; bool ban = false; };
/// Removes the room, its members and all its messages.
struct DeleteRoom { std::string room; };
/// An entry of a shard's replication log (docs/REPLICATION.md): `body` is opaque here
/// (the records of one of the shard's batches, as chat encodes them). Entries of a
/// shard are numbered 1, 2, 3, ... (`lsn`); each must be the shard's last lsn + 1.
struct LogEntry {
  std::string shard;
  std::uint64_t term = 0;
  std::uint64_t lsn = 0;
  std::string body;
  friend bool operator==(const LogEntry&, const LogEntry&) = default;
};
/// Forgets a shard's log entries up to and including `lsn` (every replica has them);
/// the shard's last lsn stays.
struct TrimLog { std::string shard; std::uint64_t lsn = 0; };
/// This node's standing in a replicated shard (docs/REPLICATION.md): the term it is in,
/// whom it voted for in that term ("": nobody), and the shard's primary in that term
/// ("": not known yet; it may be this node).
struct ShardVote {
  std::string shard;
  std::uint64_t term = 0;
  std::string voted_for, primary;
  /// A member that came back with nothing (a lost data directory) is a learner until its
  /// log reaches this lsn: it takes entries and copies, and neither votes nor stands
  /// (0: a voting member).
  std::uint64_t learner_until = 0;
  friend bool operator==(const ShardVote&, const ShardVote&) = default;
};
/// Drops a shard's log entries after `lsn` (a tail that never reached a majority of the
/// shard's members); the shard's position becomes `lsn`, with the term of that entry.
struct TruncateLog { std::string shard; std::uint64_t lsn = 0; };
/// Takes a room's last message (`seq` must be the room's last seq) out of its history
/// into the `reconciled` table, which keeps it for an operator and never delivers it;
/// the room's last seq goes back by one.
struct ReconcileMessage { std::string room; std::uint64_t seq = 0; };
/// Moves `user`'s read marker in `room` forward to `seq`. A marker never goes back: a
/// seq at or below the stored one changes nothing. A stored message moves its sender's
/// marker to it as well, with no record of its own. A room that does not exist: no-op.
struct MarkRead { std::string room, user; std::uint64_t seq = 0; };
/// Whether the room's members see each other's read markers. A room that does not
/// exist: no-op.
struct SetReceipts { std::string room; bool receipts = false; };
/// How long a room keeps its messages (docs/PROTOCOL.md, set_retention). 0: the node's
/// default. `legal_hold`: nothing is trimmed while it is set.
struct Retention {
  std::uint64_t max_age_ms = 0;
  std::uint64_t max_messages = 0;
  bool legal_hold = false;
  friend bool operator==(const Retention&, const Retention&) = default;
};
/// Sets a room's retention (the whole setting). A room that does not exist: no-op.
struct SetRetention { std::string room; Retention retention; };
/// Moves a room's first seq forward to `first_seq`: its messages (and their mentions)
/// below it are removed. At or below the room's first seq: no-op. A room that has never
/// held a message may start at any seq (an import: its last seq becomes first_seq - 1);
/// any other room at most at last seq + 1 (everything trimmed). A room that does not
/// exist: no-op.
struct TrimRoom { std::string room; std::uint64_t first_seq = 0; };
using Record = std::variant<CreateRoom, AddMember, RemoveMember, StoredMessage, DeleteRoom, LogEntry, TrimLog, ShardVote,
                            TruncateLog, ReconcileMessage, MarkRead, SetReceipts, SetRetention, TrimRoom>;

/// Where a shard's replication log stands.
struct LogPosition {
  std::uint64_t term = 0, lsn = 0;
  friend bool operator==(const LogPosition&, const LogPosition&) = default;
};

/// Where a term's entries start in a shard's log: its first lsn.
struct TermStart {
  std::uint64_t term = 0, lsn = 0;
  friend bool operator==(const TermStart&, const TermStart&) = default;
};

/// A page of history, always in ascending seq order.
struct Page {
  std::vector<StoredMessage> messages;
  bool more = false;  ///< more messages exist beyond this page in the direction read
};
/// A page read for a history reply: its messages as message maps (common/message_map.hpp)
/// packed one after another, ascending by seq. In a store in clear these are the stored
/// values as they are: nothing is decoded or encoded.
struct MapPage {
  std::string maps;
  std::size_t count = 0;
  bool more = false;  ///< more messages exist beyond this page in the direction read
  /// Set (the room's first seq) when the query asked for messages below the room's
  /// first seq, which were removed (TrimRoom): an `after` below first_seq - 1, or a
  /// backward page that reached the room's oldest message in a room whose first seq
  /// is past 1. 0 otherwise.
  std::uint64_t truncated_at = 0;
};
struct PageQuery {
  enum class Mode : std::uint8_t { newest, before, after } mode = Mode::newest;
  std::uint64_t seq = 0;  ///< before: seq < this; after: seq > this
  std::size_t limit = 50;
  std::uint64_t up_to = ~std::uint64_t{0};  ///< nothing past this seq (stored, not acknowledged yet)
  std::size_t max_bytes = ~std::size_t{0};  ///< the page stops before this many bytes of maps (one message at least)
  /// Set: each message with reactions says which keys this user reacted with (`mine`).
  std::string reader = {};
  /// Set: only the thread with this root, the root first (docs/PROTOCOL.md 4.7.3); `seq`
  /// bounds the thread's seqs. no_such_message if it is not a message that can be a root.
  std::uint64_t thread = 0;
};

/// A message as a lifecycle entry would find it (HistoryStore::target).
struct TargetState {
  bool found = false;  ///< a stored entry at that seq (false: none, or trimmed)
  std::string user;    ///< its sender
  std::uint64_t ts_ms = 0;
  EntryKind kind = EntryKind::message;
  bool deleted = false;
  std::vector<Reaction> reactions;  ///< its counts by key
  bool reacted = false;             ///< the user asked about reacted with the key asked about
  std::uint64_t thread = 0;         ///< the root of the thread it is in (0: none)
  friend bool operator==(const TargetState&, const TargetState&) = default;
};

/// What chat needs at startup to carry on where it stopped.
struct RoomState {
  std::string creator;
  std::uint64_t created_ms = 0;
  std::uint64_t last_seq = 0;          ///< 0 for a room with no message yet
  std::map<std::string, Role> members;  ///< user -> role
  bool private_room = false;
  std::set<std::string> removed{};  ///< users an owner removed (RemoveMember::remember), not members
  std::set<std::string> banned{};   ///< users banned (RemoveMember::ban): not members, not in `removed`
  /// Read markers: user -> the seq they have read up to (MarkRead, or their own message).
  std::map<std::string, std::uint64_t> read{};
  /// Mentions not read yet: user -> the seqs of the messages past their marker that
  /// mention them, ascending.
  std::map<std::string, std::vector<std::uint64_t>> mentions{};
  bool receipts = false;  ///< members see each other's read markers (SetReceipts)
  std::uint64_t first_seq = 1;  ///< its oldest message held: those below were trimmed (TrimRoom)
  Retention retention{};
  /// The newest message (last_seq > 0): its time, sender and the start of its body (at
  /// most kPreviewBytes, not cutting a character).
  std::uint64_t last_ts_ms = 0;
  std::string last_user{};
  std::string preview{};
};
/// How much of the newest message's body a room's summary shows.
inline constexpr std::size_t kPreviewBytes = 100;
struct RecentPublish {
  std::string room, user, client_msg_id;
  std::uint64_t seq = 0, ts_ms = 0;
};
struct Snapshot {
  std::map<std::string, RoomState> rooms;
  /// Messages with ts_ms >= the `since_ms` given to snapshot(), in (room, seq) order:
  /// chat rebuilds its idempotency window from them.
  std::vector<RecentPublish> recent;
  /// The last entry of each shard's replication log (shards with none are left out).
  std::map<std::string, LogPosition> logs;
  /// Each replicated shard's terms, oldest first, with the lsn each began at (every
  /// term since the log began, trimmed entries' too).
  std::map<std::string, std::vector<TermStart>> terms;
  /// This node's standing in each replicated shard it has voted or followed in.
  std::map<std::string, ShardVote> votes;
};

class HistoryStore {
  struct Impl;

 public:
  /// Opens (creating if needed) the store in options.dir.
  /// Errors: errc::unavailable if the directory or environment cannot be opened
  /// (message names the path and LMDB's reason); errc::internal if the file holds an
  /// unknown format version; errc::bad_field if options.key does not suit the store
  /// (see StoreOptions::key; the message says which way).
  static Result<HistoryStore> open(const StoreOptions& options);

  HistoryStore(HistoryStore&&) noexcept;
  HistoryStore& operator=(HistoryStore&&) noexcept;
  ~HistoryStore();  ///< closes the environment

  /// Applies every record in one write transaction and commits it.
  /// A CreateRoom for an existing room, a RemoveMember of a non-member, a DeleteRoom of
  /// a room that does not exist are no-ops; an AddMember of a member sets its role. A message for a room that does not exist, or whose seq is
  /// not the room's last seq + 1, fails the whole batch with errc::internal (chat
  /// broke an invariant; nothing is written). So does an AddMember to a room that does
  /// not exist. Names that cannot be keys fail the whole batch too: an empty room or
  /// user name with errc::bad_field; a room name over 511 bytes or a user name over
  /// 507 (LMDB's key size limit) with errc::too_large.
  /// A LogEntry whose lsn is not its shard's last lsn + 1 fails the batch with
  /// errc::internal too; so do a TruncateLog past the shard's last lsn, and a
  /// ReconcileMessage of a seq that is not its room's last.
  /// When LMDB's map is full the transaction is aborted, the map grown (doubling, up
  /// to max_map_bytes) and the batch retried; past the maximum: errc::storage_full,
  /// nothing written, the store still usable. Other LMDB failures: errc::unavailable.
  Result<void> append_batch(std::span<const Record> records);
  /// append_batch of several batches' records, in order, in one write transaction:
  /// all are stored or none is. Same errors.
  Result<void> append_batches(std::span<const std::span<const Record>> groups);

  /// The newest `limit` messages of `room`; `more` if older ones exist.
  Result<Page> newest(const std::string& room, std::size_t limit) const;
  /// The newest `limit` messages with seq < `seq`; `more` if older ones exist.
  Result<Page> before(const std::string& room, std::uint64_t seq, std::size_t limit) const;
  /// The oldest `limit` messages with seq > `seq`; `more` if newer ones exist.
  Result<Page> after(const std::string& room, std::uint64_t seq, std::size_t limit) const;
  /// All three: errc::no_such_room if the room does not exist; errc::internal if a
  /// stored message is corrupt, or in a sealed store fails authentication (changed,
  /// or moved to another room or seq); the message names the room and seq.

  /// A page of `room` as `query` says, as message maps. Same errors.
  Result<MapPage> page_maps(const std::string& room, const PageQuery& query) const;

  /// What log_after reads.
  struct LogRead {
    std::vector<LogEntry> entries;
    bool trimmed = false;
    std::uint64_t kept_from = 0;  ///< trimmed: the oldest entry kept past `lsn` (0: none)
    std::uint64_t end = 0;        ///< the log's last lsn (its position: trimmed entries count)
  };

  /// History reads from a thread other than the one that writes: each read is a read
  /// transaction of its own over what is committed, so it never waits for a write
  /// transaction or its fsync (LMDB's readers do not block the writer, nor it them).
  /// Only a growing map holds a read back, for as long as LMDB takes to remap the file.
  /// A Reader may be used from any thread, several at once; it keeps the store's
  /// environment open (the store closes when the store and every Reader are gone).
  class Reader {
   public:
    /// As HistoryStore::page_maps, same errors.
    Result<MapPage> page_maps(const std::string& room, const PageQuery& query) const;
    /// Where `room`'s messages from seq `from` on stop being older than `cutoff_ms`,
    /// looking at `limit` of them at most: the first seq whose time is at or past the
    /// cutoff (and that time), or the seq after the last one looked at (time 0) when all
    /// were older or the room ran out. Errors: as page_maps.
    struct AgeBound {
      std::uint64_t seq = 0, ts_ms = 0;
    };
    Result<AgeBound> age_bound(const std::string& room, std::uint64_t from, std::uint64_t limit,
                               std::uint64_t cutoff_ms) const;
    /// As HistoryStore::log_after (below), over what is committed.
    Result<LogRead> log_after(const std::string& shard, std::uint64_t lsn, std::size_t max_entries,
                              std::size_t max_bytes) const;

    /// Starts a hot backup of the whole store (persistence/backup_stream.hpp): a
    /// compacted copy, consistent as of now, streamed while writes go on.
    /// Errors: unavailable.
    Result<std::shared_ptr<BackupStream>> backup() const;
    /// Bytes of the store's map in use: at least what a compacted copy takes.
    std::uint64_t used_bytes() const noexcept;

   private:
    friend class HistoryStore;
    explicit Reader(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
  };
  Reader reader() const;

  /// The entry at `seq` of `room` as a lifecycle entry would find it, and whether `user`
  /// reacted to it with `key` (both may be empty). Over what is committed. Errors:
  /// no_such_room; internal (a corrupt entry); unavailable.
  Result<TargetState> target(const std::string& room, std::uint64_t seq, const std::string& user,
                             const std::string& key) const;
  /// What target() is asked.
  struct TargetQuery {
    std::string room;
    std::uint64_t seq = 0;
    std::string user, key;
  };
  /// target() of each query, in order, all in one read transaction (one committed
  /// state, the price of one transaction). Each answer as target()'s.
  std::vector<Result<TargetState>> targets(const std::vector<TargetQuery>& queries) const;

  /// Rooms, members, last seqs, and the publishes since `since_ms` (see Snapshot).
  Result<Snapshot> snapshot(std::uint64_t since_ms) const;

  /// Entries of `shard`'s replication log after `lsn`, oldest first: at most
  /// `max_entries`, and no more than `max_bytes` of bodies (but at least one). None
  /// when there are none; `trimmed` (and none) when the entry after `lsn` was trimmed
  /// already (a replica that far behind needs a snapshot).
  Result<LogRead> log_after(const std::string& shard, std::uint64_t lsn, std::size_t max_entries,
                            std::size_t max_bytes) const;

  /// A copy of the whole store, for a replica that needs one (docs/REPLICATION.md):
  /// mdb_env_copy2 with MDB_CP_COMPACT, one read transaction (writes go on), into the
  /// existing empty directory `dir` as its data.mdb. Returns the copy's size in bytes.
  /// Errors: errc::unavailable (the directory, LMDB, the disk), naming `dir`.
  Result<std::uint64_t> copy_to(const std::filesystem::path& dir) const;

  /// What install_shard put in place.
  struct InstalledShard {
    LogPosition position;          ///< the shard's log position in the copy
    std::vector<TermStart> terms;  ///< and its terms
    /// The installed rooms for chat's view: each room's CreateRoom and AddMembers, then
    /// its last message and those since `since_ms`, oldest first (bodies left out).
    std::vector<Record> view;
    std::uint64_t rooms = 0, messages = 0;
    /// This store's messages of the shard the copy does not have (a tail no majority
    /// had), moved into the reconciled table.
    std::uint64_t reconciled = 0;
  };
  /// Replaces one shard's part of this store with the copy's (made by copy_to on the
  /// shard's primary, in directory `dir`): the rooms `in_shard` picks, with their
  /// members and messages, go (this store's) and come (the copy's); the shard's log
  /// entries here go, and its log position and terms become the copy's. One write
  /// transaction: all of it or nothing. This store's messages of the shard that the
  /// copy does not have (none at that seq, or another message there) are kept in the
  /// reconciled table (see reconciled()). Other shards' rooms and logs and this node's
  /// votes stay as they are.
  /// Messages are opened with the copy's key and sealed again with this store's: the
  /// copy must be sealed with this store's key, or be in clear.
  /// Errors: errc::unavailable (the copy cannot be opened or read); errc::bad_field (it
  /// is sealed with another key, or this store's key is missing); errc::internal (a
  /// corrupt copy or another format version); errc::storage_full.
  Result<InstalledShard> install_shard(const std::filesystem::path& dir, const std::string& shard,
                                       const std::function<bool(std::string_view room)>& in_shard,
                                       std::uint64_t since_ms);

  /// The messages ReconcileMessage took out of their rooms' history, oldest first.
  Result<std::vector<StoredMessage>> reconciled() const;

  /// Current LMDB map size in bytes (grows under append_batch).
  std::size_t map_bytes() const noexcept;
  /// Bytes of the map in use (LMDB pages written so far); map usage is this over
  /// map_bytes().
  std::size_t used_bytes() const noexcept;
  /// The most the map may grow to (StoreOptions::max_map_bytes).
  std::size_t max_map_bytes() const noexcept;

 private:
  explicit HistoryStore(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace switchboard::persistence
