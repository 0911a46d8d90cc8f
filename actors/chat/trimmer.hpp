// Retention in the background: for each room whose primary this node is, what to do
// next to keep it within what it keeps (RoomBook::Kept): look for where its messages
// stop being too old (a scan, by the history reader, off the commit thread), or remove
// its oldest messages up to a seq (a trim_history of chat's own, a bounded write that
// goes through the shard's log like any other). One step at a time per room: the next
// is planned when the last one is answered, so a room far over its bounds is trimmed
// step after step, each step a short write transaction among the publishes.
//
// No sockets, no clock (times come in), no store; one thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace switchboard::actors {

class Trimmer {
 public:
  /// What a room holds and keeps.
  struct Room {
    std::uint64_t first_seq = 1;    ///< its oldest message held (as given out)
    std::uint64_t durable_seq = 0;  ///< its newest acknowledged message
    std::uint64_t max_age_ms = 0;   ///< 0: no bound by age
    std::uint64_t max_messages = 0;  ///< 0: no bound by count
    bool hold = false;              ///< a legal hold: nothing is removed
  };
  struct Step {
    enum class Kind { none, scan, trim } kind = Kind::none;
    std::uint64_t from = 0, limit = 0, cutoff_ms = 0;  ///< scan: AgeScan's fields
    std::uint64_t before = 0;                          ///< trim: trim_history's
  };

  /// Messages a scan looks at, and a trim removes, at most.
  explicit Trimmer(std::uint64_t step) : step_(step) {}

  /// The next step for `name` at wall time `now_ms` (none while one is under way, or
  /// when the room is within its bounds).
  Step next(const std::string& name, const Room& room, std::uint64_t now_ms) {
    if (room.hold || (room.max_age_ms == 0 && room.max_messages == 0)) {
      states_.erase(name);
      return {};
    }
    State& s = states_[name];
    if (s.busy) return {};
    std::uint64_t before = s.age_bound;  // from the last scan: what is too old
    s.age_bound = 0;
    if (room.max_messages != 0 && room.durable_seq >= room.max_messages)
      before = std::max(before, room.durable_seq - room.max_messages + 1);
    if (before > room.first_seq && room.first_seq <= room.durable_seq) {
      s.busy = true;
      return Step{Step::Kind::trim, 0, 0, 0, before};
    }
    if (room.max_age_ms != 0 && now_ms >= s.scan_at && room.first_seq <= room.durable_seq && now_ms > room.max_age_ms) {
      s.busy = true;
      return Step{Step::Kind::scan, room.first_seq, step_, now_ms - room.max_age_ms};
    }
    return {};
  }
  /// A scan's answer (store::AgeScanned): messages below `seq` are too old; `ts_ms`
  /// is the time of message `seq` (0: all those looked at were too old, or none was
  /// there: look again as soon as there is something to look at).
  void scanned(const std::string& name, std::uint64_t seq, std::uint64_t ts_ms, std::uint64_t max_age_ms,
               std::uint64_t now_ms) {
    auto it = states_.find(name);
    if (it == states_.end()) return;
    State& s = it->second;
    s.busy = false;
    s.age_bound = seq;
    // The oldest message kept becomes too old then; all old: straight on after the trim.
    s.scan_at = ts_ms != 0 ? ts_ms + max_age_ms : now_ms;
  }
  /// A scan that failed, or a trim done or refused: the room is planned again.
  void done(const std::string& name, std::uint64_t retry_at_ms = 0) {
    auto it = states_.find(name);
    if (it == states_.end()) return;
    it->second.busy = false;
    if (retry_at_ms != 0) it->second.scan_at = retry_at_ms;
  }
  /// The room is gone, or this node no longer writes it.
  void forget(const std::string& name) { states_.erase(name); }

 private:
  struct State {
    bool busy = false;
    std::uint64_t age_bound = 0;  ///< the last scan's answer, not acted on yet
    std::uint64_t scan_at = 0;    ///< wall ms: when age may have made more messages too old
  };
  std::uint64_t step_;
  std::unordered_map<std::string, State> states_;
};

}  // namespace switchboard::actors
