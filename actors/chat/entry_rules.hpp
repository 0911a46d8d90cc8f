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
#include <string_view>
#include <utility>
#include <vector>

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

  /// The seqs a publish has looked up before it is checked: an edit's, delete's or
  /// reaction's target; a message's thread root, or the message it answers, and the
  /// message it answers when it names both (docs/PROTOCOL.md 4.7.3). {0, 0}: none.
  static std::pair<std::uint64_t, std::uint64_t> looked_up(const transport::Publish& p) noexcept {
    if (p.kind != EntryKind::message) return {p.target, 0};
    if (p.thread != 0) return {p.thread, p.reply_to != p.thread ? p.reply_to : 0};
    return {p.reply_to, 0};
  }

  /// The lookup of what `entry` names (looked_up) was answered with `target` (and
  /// `also`, for a second seq): the changes to them in batches not durable yet are
  /// counted in; returns the mark to check it with, held until unmark().
  std::uint64_t fold(const transport::Publish& entry, persistence::TargetState& target,
                     persistence::TargetState* also = nullptr);
  /// The entry with `mark` was checked (or will not be).
  void unmark(std::uint64_t mark);

  /// Whether `entry` (a publish of kind edit, delete or react, or a message in a thread
  /// or answering another) may be stored: `target` and `also` are what its lookup (with
  /// `mark`) found, `role` the role of entry.user in the room, `now_ms` the time it is
  /// stored at. The refusal, or nullopt.
  std::optional<Error> check(const transport::Publish& entry, const persistence::TargetState& target,
                             std::uint64_t mark, Role role, std::uint64_t now_ms,
                             const persistence::TargetState* also = nullptr) const;
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
  /// Orders (room, seq) pairs, and finds one by a view of its room.
  struct ByTarget {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const noexcept {
      const std::string_view ar = a.first, br = b.first;
      return ar < br || (ar == br && a.second < b.second);
    }
  };
  void prune();
  /// The changes held of the entry at `seq` of `room` that `pick` takes, counted into
  /// `target` as `user` with `key` sees it, oldest first. Whether there was any.
  template <class Pick>
  bool fold_in(const std::string& room, std::uint64_t seq, const std::string& user, const std::string& key,
               persistence::TargetState& target, Pick pick) const;
  /// The refusal of a change of, or a reference to, the entry at `seq` that `target`
  /// (with the changes since its lookup counted in) is: none, not a message, deleted.
  static std::optional<Error> standing(const std::string& room, std::uint64_t seq,
                                       const persistence::TargetState& target);
  /// Counts `c` (a change of the entry's target) into `target`, as seen by `user` and `key`.
  static void count_in(const Change& c, const std::string& user, const std::string& key,
                       persistence::TargetState& target);

  std::uint64_t edit_window_ms_, delete_window_ms_;  ///< 0: no bound
  std::size_t max_keys_;
  std::deque<Change> changes_;  ///< accepted, oldest first (numbers ascending)
  /// The numbers of the changes held, by their target: a check reads only its target's.
  std::map<std::pair<std::string, std::uint64_t>, std::vector<std::uint64_t>, ByTarget> by_target_;
  std::uint64_t made_ = 0;              ///< changes accepted so far (the next mark)
  std::multiset<std::uint64_t> marks_;  ///< of the lookups answered and not checked yet
};

}  // namespace switchboard::actors
