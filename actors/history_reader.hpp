// The history reader: answers chat's history reads (store::Read) on a thread of its own,
// from what persistence has committed, so that a read never waits behind a group commit
// or its fsync (persistence's thread only writes). Each read is one LMDB read
// transaction of its own (HistoryStore::Reader).
//
// A read carries the highest seq it may return (`up_to`: the room's acknowledged seq, as
// chat knows it). Everything up to it is committed before chat learns it is, so a read
// begun after that sees it; what is committed past it (a batch whose answer has not
// reached chat, or, in a replicated shard, entries not yet on enough replicas) is left
// out, on this thread as it was on persistence's.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "switchboard/actors/actor.hpp"
#include "switchboard/actors/store_protocol.hpp"
#include "switchboard/persistence/history_store.hpp"

namespace switchboard::actors {

struct PersistenceMetrics;  // actors/metrics.hpp

struct HistoryReaderOptions {
  /// A history page stops growing at this many bytes of messages (the rest: "more").
  std::size_t max_page_bytes = 4 * 1024 * 1024;
  /// Where reads and pages are counted (as persistence's `read` and `page`); none: not
  /// counted. Its counters are atomic: shared with persistence's thread.
  PersistenceMetrics* metrics = nullptr;
};

/// The answer to `read`: the client's reply frame, a page of the stored message maps as
/// they are (nothing decoded or encoded again) or an error (no_such_room, unavailable).
store::Page read_page(const persistence::HistoryStore::Reader& store, const store::Read& read,
                      const HistoryReaderOptions& options);

class HistoryReader final : public Actor {
 public:
  HistoryReader(persistence::HistoryStore::Reader store, HistoryReaderOptions options)
      : store_(std::move(store)), options_(options) {}

  void on_message(const Inbound& in, const Now& now, Effects& out) override;
  void on_timer(std::uint64_t id, const Now& now, Effects& out) override;

 private:
  /// A hot backup being read (transport::Backup): one at a time. Its last chunks are
  /// kept for a client that asks ahead and for one that lost a reply and asks again.
  struct RunningBackup {
    std::uint64_t id = 0;
    std::string asker;           ///< who began it, and with which request
    std::uint64_t begin_request = 0;
    std::shared_ptr<persistence::BackupStream> stream;
    std::uint64_t estimate = 0;
    std::deque<std::string> recent;  ///< the last chunks read, oldest first
    std::uint64_t recent_offset = 0; ///< where recent.front() begins
    std::uint64_t next = 0;          ///< the first byte not read yet
    bool done = false;
    SteadyClock::time_point touched;
  };
  store::Page backup_chunk(const store::BackupRead& ask, const Now& now, Effects& out);

  persistence::HistoryStore::Reader store_;
  HistoryReaderOptions options_;
  std::optional<RunningBackup> backup_;
  std::uint64_t next_backup_ = 0;  ///< from the wall clock at the first: ids differ across restarts
  bool timer_set_ = false;
};

}  // namespace switchboard::actors
