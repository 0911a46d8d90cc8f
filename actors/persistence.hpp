// The persistence actor: owns the HistoryStore (one LMDB environment).
//
// Appends arrive as batches from chat shards; every batch that is waiting when the
// mailbox runs dry goes into one write transaction (group commit), and each sender is
// told once that transaction is committed (and, with `sync`, fsynced). A node's history
// reads go to the history reader beside it (actors/history_reader.hpp), on a thread of
// its own; a read sent here is answered the same way, between commits.
// A batch sent on top of one that was not stored is refused (Append::after), so a
// sender's batches are stored as an unbroken prefix.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "switchboard/actors/actor.hpp"
#include "switchboard/actors/store_protocol.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::actors {

struct PersistenceMetrics;  // actors/metrics.hpp

struct PersistenceOptions {
  transport::Limits limits;
  /// A history page stops growing at this many body bytes (the rest: "more").
  std::size_t max_page_bytes = 4 * 1024 * 1024;
  /// Where persistence counts what it does (actors/metrics.hpp); none: nothing is
  /// counted. Used on persistence's thread only; must outlive the actor.
  PersistenceMetrics* metrics = nullptr;
  /// Where copies of the store for replicas, and from primaries, are kept while they are
  /// sent or installed (store::CopyOp); emptied at start. Empty: none are made.
  std::filesystem::path copies_dir = {};
  /// Whether `room` is in `shard` (the topology's placement): which rooms a copy's
  /// install replaces. Unset: no copy can be installed.
  std::function<bool(const std::string& shard, std::string_view room)> in_shard = {};
};

struct PersistenceStats {
  std::uint64_t commits = 0;
  std::uint64_t records = 0;
  std::uint64_t failures = 0;
};

class Persistence final : public Actor {
 public:
  Persistence(persistence::HistoryStore store, PersistenceOptions options);

  void on_start(const std::vector<std::string>&, const std::vector<std::string>&, const Now&, Effects&) override;
  void on_message(const Inbound& in, const Now& now, Effects& out) override;
  void on_drained(const Now& now, Effects& out) override;
  bool idle() const override { return waiting_.empty(); }

  const PersistenceStats& stats() const noexcept { return stats_; }

 private:
  struct Waiting {
    std::string sender;
    store::Append append;
  };
  void answer_read(const std::string& sender, const store::Read& read, Effects& out);
  /// Takes a shard's log tail (and its messages) back; see store::Truncate.
  store::Truncated truncate(const store::Truncate& request);
  /// One step of a copy (store::CopyOp); nullopt: nothing to answer.
  std::optional<store::CopyDone> copy(store::CopyOp& op);
  /// The store's size and map usage, for the metrics.
  void measure_store();

  /// True if `w` was sent on top of a batch of its sender that was not stored.
  bool follows_failure(const Waiting& w) const;

  persistence::HistoryStore store_;
  PersistenceOptions options_;
  std::vector<Waiting> waiting_;
  std::map<std::string, std::uint64_t> last_failed_;  ///< per sender: its last batch not stored
  PersistenceStats stats_;
};

}  // namespace switchboard::actors
