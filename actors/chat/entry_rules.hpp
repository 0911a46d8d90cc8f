// EntryRules: who may edit, delete or react to which message (docs/PROTOCOL.md 4.7.2),
// checked before a lifecycle entry gets its seq.
//
// The rules need the target as it stands: its author, time, whether it was deleted, its
// reactions. Chat does not keep messages in memory, so it asks persistence (a Lookup of
// what is committed, answered at once: no commit is forced for it) and checks the answer
// against the changes the lookup could not see: those of its batches not yet durable when
// the answer came (persistence answers a batch's commit and a lookup in the order it did
// them, so a batch still not durable then was not committed when the lookup read), and
// those accepted after. fold() counts the first in when the answer comes and takes a mark;
// check() counts in the changes past the mark. A change is kept until its batch is durable
// and no answered lookup older than it waits for its check, and dropped with its batch
// when that batch is not stored. Sans-IO: chat feeds it.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "switchboard/common/error.hpp"
#include "switchboard/common/role.hpp"
#include "switchboard/persistence/history_store.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors {

class EntryRules {
 public:
  explicit EntryRules(const transport::Limits& limits)
      : edit_window_ms_(limits.edit_window_s * 1000), delete_window_ms_(limits.delete_window_s * 1000),
        max_keys_(limits.max_reaction_keys) {}

  /// The lookup of `entry`'s target was answered with `target`: the changes to it in
  /// batches not durable yet are counted into `target`; returns the mark to check it
  /// with, held until unmark().
  std::uint64_t fold(const transport::Publish& entry, persistence::TargetState& target);
  /// The entry with `mark` was checked (or will not be).
  void unmark(std::uint64_t mark);

  /// Whether `entry` (a publish of kind edit, delete or react) may be stored: `target`
  /// is what its lookup (with `mark`) found, `role` the role of entry.user in the room,
  /// `now_ms` the time it is stored at. The refusal, or nullopt.
  std::optional<Error> check(const transport::Publish& entry, const persistence::TargetState& target,
                             std::uint64_t mark, Role role, std::uint64_t now_ms) const;
  /// `entry` passed check() and is in batch `batch`.
  void accepted(const transport::Publish& entry, std::uint64_t batch);
  /// Batch `batch` is durable: lookups from now on see its changes.
  void durable(std::uint64_t batch);
  /// Batch `batch` was not stored: its changes never happened.
  void rolled_back(std::uint64_t batch);

  std::size_t held() const noexcept { return changes_.size(); }

 private:
  struct Change {
    std::uint64_t number = 0, batch = 0;
    std::string room;
    std::uint64_t target = 0;
    EntryKind kind = EntryKind::message;
    std::string user, key;
    bool on = true;
    bool durable = false;  ///< its batch is: lookups see it
  };
  void prune();
  /// Counts `c` (a change of the entry's target) into `target`, as seen by `user` and `key`.
  static void count_in(const Change& c, const std::string& user, const std::string& key, bool& deleted,
                       bool& reacted, std::map<std::string, std::uint64_t>& counts);

  std::uint64_t edit_window_ms_, delete_window_ms_;  ///< 0: no bound
  std::size_t max_keys_;
  std::deque<Change> changes_;      ///< accepted, oldest first
  std::uint64_t made_ = 0;          ///< changes accepted so far (the next mark)
  std::multiset<std::uint64_t> marks_;  ///< of the lookups answered and not checked yet
};

}  // namespace switchboard::actors
