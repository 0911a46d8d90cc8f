// Chat's retention: each room this node writes is kept within what it keeps (its own
// setting, the node's default and caps: RoomBook::kept), step by step (Trimmer). A
// scan finds where messages stop being too old (the history reader, off the commit
// thread); a trim is chat's own trim_history, stored and replicated like any other
// request, so that replicas trim exactly as the primary does.
#include "switchboard/actors/chat.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace switchboard::actors {

void Chat::retention_tick(const Now& now, Effects& out) {
  for (const auto& [name, room] : book_.rooms()) keep_within_retention(name, now, out, &room);
  out.start_timer(kRetentionTimer, now.steady + options_.retention_interval);
}

void Chat::keep_within_retention(const std::string& name, const Now& now, Effects& out, const Room* room) {
  if (room == nullptr) room = book_.find(name);
  if (room == nullptr || stopping_ || (placement_ && !primary_here(name))) {
    trimmer_.forget(name);
    trim_pace_.erase(name);
    return;
  }
  const RoomBook::Kept kept = book_.kept(*room);
  const Trimmer::Step step = trimmer_.next(
      name, {room->first_seq, room->durable_seq, kept.max_age_ms, kept.max_messages, kept.hold}, now.wall_ms);
  switch (step.kind) {
    case Trimmer::Step::Kind::none:
      return;
    case Trimmer::Step::Kind::scan: {
      const std::uint64_t corr = next_forward_++;
      age_scans_.emplace(corr, name);
      out.send(options_.reader_actor.empty() ? options_.persistence_actor : options_.reader_actor,
               store::encode(store::AgeScan{corr, name, step.from, step.limit, step.cutoff_ms}));
      return;
    }
    case Trimmer::Step::Kind::trim: {
      // Chat's own request: no caller to answer (send_frame skips it); its reply goes
      // to on_own_trim. A room that fills faster than one step at a time trims gets
      // several, each taking the bounded step after the one before.
      TrimPace& pace = trim_pace_[name];
      pace.in_flight = pace.steps;
      for (int i = 0; i < pace.in_flight; ++i) {
        Caller self{};
        self.received = now.steady;
        enqueue(Pending{std::move(self), transport::TrimHistory{name, step.before}, kNoClaim, {}, {}, {}}, {}, now, out);
      }
      return;
    }
  }
}

void Chat::on_age_scanned(const store::AgeScanned& scanned, const Now& now, Effects& out) {
  auto it = age_scans_.find(scanned.corr);
  if (it == age_scans_.end()) return;
  const std::string name = std::move(it->second);
  age_scans_.erase(it);
  if (scanned.error.code != errc::ok) {
    spdlog::warn("chat: retention of room '{}': reading its oldest messages failed: {}", name, scanned.error.message);
    trimmer_.done(name, now.wall_ms + 10'000);
    return;
  }
  const Room* room = book_.find(name);
  if (room == nullptr) return trimmer_.forget(name);
  trimmer_.scanned(name, scanned.seq, scanned.ts_ms, book_.kept(*room).max_age_ms, now.wall_ms);
  keep_within_retention(name, now, out);
}

void Chat::on_own_trim(const std::string& name, bool ok, SteadyClock::duration took, const Now& now, Effects& out) {
  // A room far over its bounds: the next step at once while no client has asked for a
  // write for 100 ms; while they go on, after a pause nineteen times as long as this step took
  // from queued to stored, so that trimming takes about a twentieth of the commits. The room
  // stays busy for the Trimmer meanwhile: the once-a-second look does not start another.
  // Of steps queued at once, the last to be answered paces the next.
  if (auto it = trim_pace_.find(name); it != trim_pace_.end() && it->second.in_flight > 1) {
    --it->second.in_flight;  // the last one answers for them all
    return;
  }
  const bool quiet = now.steady - last_request_ > std::chrono::milliseconds(100);
  if (!ok || quiet) {
    trimmer_.done(name);
    if (ok) keep_within_retention(name, now, out);
    return;  // refused (a legal hold came first) or not stored: at the next look
  }
  auto pause = std::clamp<SteadyClock::duration>(took * 19, std::chrono::milliseconds(1), std::chrono::seconds(1));
  // Never slower than the room fills: the next step is stored before half a step's
  // worth of new messages has come (the pause and the step's own time from queued to
  // stored together), so a room written to fast stays within its bound. When a step
  // alone takes longer than that, the next steps go at once and together: one more
  // for each half step's worth of messages the room gained while this one was on its
  // way, so they remove at least twice what comes in meanwhile.
  const Room* room = book_.find(name);
  TrimPace& pace = trim_pace_[name];
  pace.steps = 1;
  pace.in_flight = 0;
  if (room != nullptr) {
    if (pace.at == SteadyClock::time_point{} || room->durable_seq < pace.durable_seq) {
      pace.at = now.steady;  // the first window starts
      pace.durable_seq = room->durable_seq;
    } else if (now.steady - pace.at >= kFillWindow) {
      const std::uint64_t gained = room->durable_seq - pace.durable_seq;
      pace.fills = gained == 0 ? SteadyClock::duration{}
                               : std::max<SteadyClock::duration>((now.steady - pace.at) * (RoomBook::kMaxTrim / 2) / gained,
                                                                 SteadyClock::duration{1});
      pace.at = now.steady;
      pace.durable_seq = room->durable_seq;
    }
    if (pace.fills > SteadyClock::duration{}) {
      pace.steps = static_cast<int>(std::min<std::int64_t>(kMaxTrimSteps, 1 + took / pace.fills));
      pause = std::min<SteadyClock::duration>(pause, std::max<SteadyClock::duration>(pace.fills - took, SteadyClock::duration{}));
    }
  }
  trims_waiting_.emplace_back(now.steady + pause, name);
  if (!trim_timer_armed_) {
    trim_timer_armed_ = true;
    out.start_timer(kTrimTimer, trims_waiting_.front().first);
  }
}

void Chat::next_trim_steps(const Now& now, Effects& out) {
  trim_timer_armed_ = false;
  while (!trims_waiting_.empty() && trims_waiting_.front().first <= now.steady) {
    const std::string name = std::move(trims_waiting_.front().second);
    trims_waiting_.pop_front();
    trimmer_.done(name);
    keep_within_retention(name, now, out);
  }
  if (!trims_waiting_.empty()) {
    trim_timer_armed_ = true;
    out.start_timer(kTrimTimer, trims_waiting_.front().first);
  }
}

}  // namespace switchboard::actors
