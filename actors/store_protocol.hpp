// Messages between a chat shard and its persistence actor (internal to a node; the
// client protocol is in transport/). msgpack frames like everything else, but for the
// batch itself: chat and persistence are two threads of one process, so an Append is
// handed over by address (hand_over / receive), not encoded and decoded again, and so
// is a page of history coming back (its reply frame is a client's, encoded once).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "switchboard/common/error.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::actors::store {

/// chat -> persistence: store these records in one group commit.
struct Append {
  std::uint64_t batch = 0;
  /// The sender's previous batch still in flight when this one was sent (0: none).
  /// If that batch was not stored, this one is refused too: its seqs follow on.
  std::uint64_t after = 0;
  std::vector<persistence::Record> records;
};
/// persistence -> chat: the batch is durable (error.code == errc::ok) or nothing of it
/// was stored.
struct Appended {
  std::uint64_t batch = 0;
  Error error{errc::ok, {}};
};
/// chat -> persistence: read a history page and answer with the client's reply frame.
struct Read {
  enum class Mode : std::uint8_t { newest = 0, before = 1, after = 2 };
  std::uint64_t corr = 0;        ///< chat's correlation id
  std::uint64_t reply_id = 0;    ///< the client's request id, for the reply frame
  std::string room;
  Mode mode = Mode::newest;
  std::uint64_t seq = 0;
  std::uint32_t limit = 0;
  /// No message past this seq: what is stored but not acknowledged yet (waiting for
  /// replicas) is not read.
  std::uint64_t up_to = ~std::uint64_t{0};
  /// The user reading (the request's `as`): each message with reactions says which
  /// keys they reacted with (`mine`). Empty: none.
  std::string reader = {};
  std::uint64_t thread = 0;  ///< set: a page of the thread with this root
};
/// chat -> history reader: a chunk of a hot backup (transport::Backup), answered with a
/// Page holding the client's reply (BackupOk or an error). `backup` 0: begin one.
struct BackupRead {
  std::uint64_t corr = 0;
  std::uint64_t reply_id = 0;
  std::uint64_t backup = 0;
  std::uint64_t offset = 0;
  /// Who asks (chat's name for the client's connection): a begin asked again by the
  /// same request (a client's retry) is answered with the same backup's first chunk.
  std::string asker;
};
/// chat -> history reader: where a room's messages stop being older than `cutoff_ms`
/// (its retention's max age), looking at `limit` messages from seq `from` on.
struct AgeScan {
  std::uint64_t corr = 0;
  std::string room;
  std::uint64_t from = 0, limit = 0, cutoff_ms = 0;
};
/// history reader -> chat: the first seq from `from` whose message is not older than
/// the cutoff (`ts_ms` its time), or from + limit when all those looked at are older
/// (`ts_ms` 0), or the room's last seq + 1 when it ran out of messages (`ts_ms` 0).
struct AgeScanned {
  std::uint64_t corr = 0;
  std::string room;
  std::uint64_t seq = 0, ts_ms = 0;
  Error error{errc::ok, {}};
};
/// persistence -> chat: the encoded client reply (history or error) for `corr`.
struct Page {
  std::uint64_t corr = 0;
  std::string reply_frame;
};

/// chat -> persistence: entries of a shard's replication log after `after`, for a
/// replica that is behind (persistence::HistoryStore::log_after).
struct ReadLog {
  std::uint64_t corr = 0;
  std::string shard;
  std::uint64_t after = 0;
  std::uint64_t max_entries = 0, max_bytes = 0;
};
/// persistence -> chat: what ReadLog found (error.code != ok: nothing could be read).
struct LogPage {
  std::uint64_t corr = 0;
  std::vector<persistence::LogEntry> entries;
  bool trimmed = false;
  Error error{errc::ok, {}};
};

/// chat -> persistence: drop a shard's log after `lsn` (a tail the shard's primary does
/// not have, docs/REPLICATION.md), taking that tail's messages out of their rooms into
/// the `reconciled` table. Done after every batch sent before it.
struct Truncate {
  std::uint64_t corr = 0;
  std::string shard;
  std::uint64_t lsn = 0;
};
/// persistence -> chat: the tail is gone (error.code == ok), with the messages taken out
/// (bodies left out), newest first; or nothing changed.
struct Truncated {
  std::uint64_t corr = 0;
  std::vector<persistence::StoredMessage> reconciled;
  Error error{errc::ok, {}};
};

/// chat -> persistence: a step of sending a copy of this node's store to a replica, or
/// of installing a copy that came from a shard's primary (docs/REPLICATION.md,
/// "Catching up from a copy"). Copies live under the data directory's copies/, which
/// persistence empties when it starts.
struct CopyOp {
  enum class Kind : std::uint8_t {
    make = 0,     ///< copy the whole store as copy `copy` (HistoryStore::copy_to): answered with its size
    read = 1,     ///< up to `max` bytes of copy `copy` from `offset`: answered with them
    drop = 2,     ///< copy `copy` is not needed any more: deleted; no answer
    write = 3,    ///< `data` at `offset` of the copy coming in for `shard` (0 starts it afresh): answered with its size
    install = 4,  ///< install the copy that came in for `shard` (HistoryStore::install_shard, since `offset`
                  ///< ms), then delete it: answered with what was installed
  } kind = Kind::make;
  std::uint64_t corr = 0;
  std::uint64_t copy = 0;
  std::string shard = {};
  std::uint64_t offset = 0, max = 0;
  std::string data = {};
};
/// persistence -> chat: a CopyOp done (error.code == ok), or not done (nothing installed).
struct CopyDone {
  std::uint64_t corr = 0;
  std::uint64_t size = 0;  ///< make: the copy's size; write: bytes written
  std::string data = {};   ///< read
  /// install: the shard's log position and terms, and the installed rooms for chat's view
  /// (persistence::HistoryStore::InstalledShard).
  persistence::LogPosition position = {};
  std::vector<persistence::TermStart> terms = {};
  std::vector<persistence::Record> view = {};
  std::uint64_t reconciled = 0;  ///< install: messages moved into the reconciled table
  Error error{errc::ok, {}};
};

/// chat -> persistence: how the entry at `seq` of `room` stands, for a lifecycle entry
/// about to target it (persistence::HistoryStore::target), and whether `user` reacted
/// with `key`; one item for each such publish chat read in one round, all read in one
/// transaction. Answered at once, from what is committed (batches waiting for the next
/// group commit are not in it; their Appended comes after this answer).
/// A message with `reply_to` and `thread` has both looked up at once: `also`, answered
/// in Looked::Item::also.
struct Lookup {
  struct Item {
    std::uint64_t corr = 0;
    std::string room;
    std::uint64_t seq = 0;
    std::string user, key;
    std::uint64_t also = 0;
  };
  std::vector<Item> items;
};
/// persistence -> chat: the answers, one for each item of the Lookup and in its order:
/// the entries found (error.code == ok), or why there are none.
struct Looked {
  struct Item {
    std::uint64_t corr = 0;
    persistence::TargetState target, also;
    Error error{errc::ok, {}};
  };
  std::vector<Item> items;
};

using Message = std::variant<Append, Appended, Read, Page, ReadLog, LogPage, Truncate, Truncated, CopyOp, CopyDone,
                             BackupRead, AgeScan, AgeScanned, Lookup, Looked>;

std::string encode(const Message& message);
/// Errors: bad_frame / bad_field if the frame is not one of the messages above.
Result<Message> decode(std::string_view frame);

/// A frame that hands `message` over to another actor of this process (chat's batch to
/// its persistence; a page, with its client reply already encoded, back to chat): the
/// object moves to the heap, and the frame holds its address after a byte that starts
/// no msgpack value (0xc1). Nothing in it is encoded or copied. Such a frame must be
/// taken by receive() exactly once, in this process; one never taken leaks its message.
std::string hand_over(Message&& message);
/// What an actor of this process sends: a handed-over message (taken over: the frame
/// is spent), else decode(frame). Only for frames from this process's own actors
/// (inproc mailboxes: nothing from outside the process reaches them).
Result<Message> receive(std::string_view frame);

/// The records of one batch as one msgpack array: the body of a replication log entry
/// (persistence::LogEntry), and what a replica applies.
std::string encode_records(std::span<const persistence::Record> records);
/// Reads what encode_records wrote. It comes from another node: `limits` bound it
/// (strings, arrays, the whole), and a record of the log kinds is refused.
/// Errors: bad_frame, bad_field, too_large.
Result<std::vector<persistence::Record>> decode_records(std::string_view body, const transport::Limits& limits);

}  // namespace switchboard::actors::store
